package captioner

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"

	"github.com/cocoflow/cocoflow/datasets/phrases"
	"github.com/cocoflow/cocoflow/datasets/synthfaces"
	"github.com/cocoflow/cocoflow/models/text"
)

// Template writes attribute captions from templates, deterministically from Request.Seed. It
// knows three attribute vocabularies, told apart by the keys of Request.Attributes:
// synthfaces (skin, hair_color, fur_color, ...), CelebA (the 40 names of
// list_attr_celeba.txt with values "1"/"-1") and none at all (AFHQ, or any class without
// attributes). A caption names the class, usually the scene, and a random subset of at most
// two attributes, so that it never pins down an identity. It ignores Request.Image. The zero
// value is ready to use and safe for concurrent use.
type Template struct {
	// MaxAttributes is the most attribute keys one caption reveals; 0 means 2. More makes
	// captions richer, like a vision-language model's, and lets a text-to-image model trained
	// on them learn to follow attribute words; an identity keeps more keys than any caption names.
	MaxAttributes int
}

// NewTemplate returns a template captioner whose captions reveal at most 2 attribute keys.
func NewTemplate() *Template { return &Template{} }

var _ Captioner = (*Template)(nil)

const (
	// defaultCaptions is the number of captions Template writes when Request.N is 0.
	defaultCaptions = 2
	// triesPerCaption bounds the draws spent looking for each new distinct caption.
	triesPerCaption = 200
	// templateStream is the PCG stream of the template captioner, so that it draws other
	// numbers than a caller using the same per-image seed for something else.
	templateStream = 0x63617074696f6e73 // "captions"
	// sceneProb is how often a caption mentions the scene; sceneFirstProb how often a caption
	// that does starts with it ("at the beach, a smiling girl.").
	sceneProb      = 0.8
	sceneFirstProb = 0.15
	// extraProb is how often an attribute-less caption adds a pose phrase.
	extraProb = 0.3
)

// attributeCounts weights how many attribute keys (0, 1, 2) a caption reveals by default.
var attributeCounts = []float64{0.2, 0.45, 0.35}

// countWeights weights how many attribute keys (0 ... max) a caption reveals: attributeCounts
// for max 2 (or 0, the default); otherwise 0.1 for none and the rest spread evenly over 1 ... max.
func countWeights(max int) []float64 {
	if max == 0 || max == len(attributeCounts)-1 {
		return attributeCounts
	}
	w := make([]float64, max+1)
	w[0] = 0.1
	for k := 1; k <= max; k++ {
		w[k] = 0.9 / float64(max)
	}
	return w
}

// Frames: what comes before the subject's noun phrase.
var (
	humanFrames = []string{"", "a photo of ", "a portrait of ", "a close-up of ", "a picture of ",
		"an image of ", "a headshot of ", "there is "}
	petFrames = []string{"", "a photo of ", "a portrait of ", "a close-up of ", "a picture of ",
		"an image of ", "a close-up of the face of ", "the face of ", "there is "}
	// genericExtras are post phrases of attribute-less captions.
	genericExtras = []string{"looking at the camera"}
)

// vocabulary is the attribute vocabulary of a request.
type vocabulary int

const (
	vocabNone vocabulary = iota
	vocabSynthfaces
	vocabCelebA
)

// synthfacesKeys is the set of synthfaces attribute keys.
var synthfacesKeys = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range append(slices.Clone(synthfaces.IdentityKeys), synthfaces.ImageKeys...) {
		m[k] = true
	}
	return m
}()

// choice is a facet's possible phrases with the facet's place and weight.
type choice struct {
	order   int
	weight  float64
	phrases []phrase
}

// plan is everything a caption of one request is drawn from.
type plan struct {
	class   string
	frames  []string
	choices []choice  // facets with something to say, in facet order
	counts  []float64 // weights of revealing 0, 1, ... attribute keys
	limit   int       // most attribute keys one caption may reveal
	scenes  []string
	extras  []string
}

// Caption returns r.N captions of r (2 when r.N is 0), pairwise different, each containing the
// class word r.Class (lower-cased) at Caption.ConceptStart. The same request gives the same
// captions. Errors name r.ID: an empty class, a negative N, attributes of no known vocabulary
// or of two, a synthfaces value or scene outside synthfaces.Values, a CelebA value other than
// "1" or "-1", fewer distinct captions possible than asked for, and a done context.
func (t *Template) Caption(ctx context.Context, r Request) ([]Caption, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("captioner: image %s: %w", r.ID, err)
	}
	n := r.N
	if n == 0 {
		n = defaultCaptions
	}
	if n < 0 {
		return nil, fmt.Errorf("captioner: image %s: N: want >= 0 captions, got %d", r.ID, r.N)
	}
	if t.MaxAttributes < 0 {
		return nil, fmt.Errorf("captioner: MaxAttributes: want >= 0, got %d", t.MaxAttributes)
	}
	p, err := newPlan(r, countWeights(t.MaxAttributes))
	if err != nil {
		return nil, fmt.Errorf("captioner: image %s: %w", r.ID, err)
	}
	rng := rand.New(rand.NewPCG(r.Seed, templateStream))
	out := make([]Caption, 0, n)
	seen := make(map[string]bool, n)
	for tries := 0; len(out) < n && tries < triesPerCaption*n; tries++ {
		c, _ := p.compose(rng)
		if seen[c.Text] {
			continue
		}
		seen[c.Text] = true
		out = append(out, c)
	}
	if len(out) < n {
		return nil, fmt.Errorf("captioner: image %s: found only %d distinct template captions for class %q, want %d",
			r.ID, len(out), p.class, n)
	}
	return out, nil
}

// newPlan validates r and gathers the frames, phrases and scenes its captions are drawn from;
// counts weights how many attribute keys a caption reveals.
func newPlan(r Request, counts []float64) (*plan, error) {
	class := strings.ToLower(strings.Join(strings.Fields(r.Class), " "))
	if class == "" {
		return nil, fmt.Errorf("class: want the concept word (man, woman, cat, ...), got %q", r.Class)
	}
	vocab, err := detectVocabulary(r.Attributes)
	if err != nil {
		return nil, err
	}
	p := &plan{class: class, frames: humanFrames, counts: counts}
	scene := r.Scene
	var facets []facet
	switch vocab {
	case vocabSynthfaces:
		if k, bad := badAttribute(r.Attributes, synthfacesKeys, func(k, v string) bool { return slices.Contains(synthfaces.Values(k), v) }); bad {
			return nil, fmt.Errorf("attribute %s: want one of %s, got %q", k, strings.Join(synthfaces.Values(k), ", "), r.Attributes[k])
		}
		if scene == "" {
			scene = r.Attributes["scene"]
		}
		if scene != "" && !slices.Contains(synthfaces.Scenes, scene) {
			return nil, fmt.Errorf("scene: want one of %s, got %q", strings.Join(synthfaces.Scenes, ", "), scene)
		}
		if slices.Contains(synthfaces.PetClasses, class) {
			p.frames = petFrames
		}
		facets = synthfacesFacets
	case vocabCelebA:
		if k, bad := badAttribute(r.Attributes, celebaNames, func(_, v string) bool { return v == celebaTrue || v == "-1" }); bad {
			return nil, fmt.Errorf("attribute %s: want \"1\" or \"-1\", got %q", k, r.Attributes[k])
		}
		facets = celebaFacets
	default:
		if !slices.Contains(synthfaces.HumanClasses, class) {
			p.frames = petFrames
		}
		p.extras = genericExtras
	}
	p.scenes = phrases.Scene(scene)
	keys := map[string]bool{}
	for i, f := range facets {
		ph := f.say(r.Attributes, class)
		if len(ph) == 0 {
			continue
		}
		p.choices = append(p.choices, choice{order: i, weight: f.weight, phrases: ph})
		for _, x := range ph {
			for _, k := range x.keys {
				keys[k] = true
			}
		}
	}
	p.limit = min(len(counts)-1, len(keys))
	return p, nil
}

// detectVocabulary tells which attribute vocabulary the keys of a belong to.
func detectVocabulary(a map[string]string) (vocabulary, error) {
	var sf, cb, other []string
	for k := range a {
		switch {
		case synthfacesKeys[k]:
			sf = append(sf, k)
		case celebaNames[k]:
			cb = append(cb, k)
		default:
			other = append(other, k)
		}
	}
	sort.Strings(sf)
	sort.Strings(cb)
	sort.Strings(other)
	switch {
	case len(sf) > 0 && len(cb) > 0:
		return vocabNone, fmt.Errorf("attributes: want synthfaces keys or CelebA names, not both: got %s and %s",
			strings.Join(sf, ","), strings.Join(cb, ","))
	case len(sf) > 0:
		return vocabSynthfaces, nil
	case len(cb) > 0:
		return vocabCelebA, nil
	case len(other) > 0:
		return vocabNone, fmt.Errorf("attributes: want synthfaces keys (hair_color, fur_color, ...) or CelebA names (Smiling, Eyeglasses, ...), got %s",
			strings.Join(other, ","))
	}
	return vocabNone, nil
}

// badAttribute returns the first attribute of a that known names (in key order) whose value
// allowed rejects, and whether there is one.
func badAttribute(a map[string]string, known map[string]bool, allowed func(key, value string) bool) (string, bool) {
	keys := make([]string, 0, len(a))
	for k := range a {
		if known[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !allowed(k, a[k]) {
			return k, true
		}
	}
	return "", false
}

// compose draws one caption and returns it with the attribute keys it reveals.
func (p *plan) compose(rng *rand.Rand) (Caption, []string) {
	frame := p.frames[rng.IntN(len(p.frames))]
	chosen, keys := p.pick(rng)
	var pres, withs, others []string
	for _, ph := range chosen {
		if ph.pre != "" {
			pres = append(pres, ph.pre)
		}
		switch {
		case ph.post == "":
		case strings.HasPrefix(ph.post, "with "):
			withs = append(withs, ph.post)
		default:
			others = append(others, ph.post)
		}
	}
	if len(p.extras) > 0 && rng.Float64() < extraProb {
		others = append(others, p.extras[rng.IntN(len(p.extras))])
	}
	scene, sceneFirst := "", false
	if len(p.scenes) > 0 && rng.Float64() < sceneProb {
		scene = p.scenes[rng.IntN(len(p.scenes))]
		sceneFirst = rng.Float64() < sceneFirstProb
	}

	var b strings.Builder
	if sceneFirst {
		b.WriteString(scene + ", ")
	}
	b.WriteString(frame)
	first := p.class
	if len(pres) > 0 {
		first = pres[0]
	}
	b.WriteString(phrases.Article(first) + " ")
	for _, w := range pres {
		b.WriteString(w + " ")
	}
	start := b.Len()
	b.WriteString(p.class)
	for i, w := range withs {
		if i == 0 {
			b.WriteString(" " + w)
		} else {
			b.WriteString(" and " + strings.TrimPrefix(w, "with "))
		}
	}
	for i, w := range others {
		switch {
		case i == 0:
			b.WriteString(" " + w)
		case strings.HasPrefix(w, "wearing ") && strings.HasPrefix(others[i-1], "wearing "):
			b.WriteString(" and " + strings.TrimPrefix(w, "wearing "))
		default:
			b.WriteString(" " + w)
		}
	}
	if scene != "" && !sceneFirst {
		b.WriteString(" " + scene)
	}
	b.WriteString(".")
	return Caption{Text: b.String(), Concept: p.class, ConceptStart: start}, keys
}

// pick draws how many attribute keys to reveal, then facets by weight and one phrase of each
// until that budget is spent; it returns the phrases in facet order and the keys they reveal.
func (p *plan) pick(rng *rand.Rand) ([]phrase, []string) {
	budget := min(drawIndex(rng, p.counts), p.limit)
	pool := slices.Clone(p.choices)
	var picked []choice
	var chosen []phrase
	var keys []string
	for budget > 0 && len(pool) > 0 {
		weights := make([]float64, len(pool))
		for i, c := range pool {
			weights[i] = c.weight
		}
		i := drawIndex(rng, weights)
		c := pool[i]
		pool = slices.Delete(pool, i, i+1)
		var fits []phrase
		for _, ph := range c.phrases {
			if len(ph.keys) <= budget {
				fits = append(fits, ph)
			}
		}
		if len(fits) == 0 {
			continue
		}
		ph := fits[rng.IntN(len(fits))]
		picked = append(picked, choice{order: c.order, phrases: []phrase{ph}})
		budget -= len(ph.keys)
		keys = append(keys, ph.keys...)
	}
	slices.SortFunc(picked, func(a, b choice) int { return a.order - b.order })
	for _, c := range picked {
		chosen = append(chosen, c.phrases[0])
	}
	return chosen, keys
}

// drawIndex draws an index with probability proportional to weights (all > 0).
func drawIndex(rng *rand.Rand, weights []float64) int {
	total := 0.0
	for _, w := range weights {
		total += w
	}
	x := rng.Float64() * total
	for i, w := range weights {
		if x < w {
			return i
		}
		x -= w
	}
	return len(weights) - 1
}

// Lexicon returns every word the template captioner can write for synthfaces requests (classes
// synthfaces.HumanClasses and PetClasses, scenes synthfaces.Scenes, attribute values
// synthfaces.Values) and for attribute-less requests of those classes, split like
// text.SplitWords (punctuation marks are words of their own), sorted and unique. The tiny model
// family builds its word vocabulary from it.
func (t *Template) Lexicon() []string {
	set := map[string]bool{}
	add := func(s string) {
		for _, w := range text.SplitWords(s) {
			set[w] = true
		}
	}
	add("a an and , .")
	for _, f := range append(slices.Clone(humanFrames), petFrames...) {
		add(f)
	}
	for _, e := range genericExtras {
		add(e)
	}
	for _, s := range synthfaces.Scenes {
		for _, ph := range phrases.Scene(s) {
			add(ph)
		}
	}
	classes := append(slices.Clone(synthfaces.HumanClasses), synthfaces.PetClasses...)
	for _, class := range classes {
		add(class)
		identity, image := synthfaces.ClassKeys(class)
		carried := map[string]bool{}
		for _, k := range append(identity, image...) {
			carried[k] = true
		}
		for _, f := range synthfacesFacets {
			var keys []string
			for _, k := range f.keys {
				if carried[k] {
					keys = append(keys, k)
				}
			}
			forEachAssignment(keys, map[string]string{}, func(a map[string]string) {
				for _, ph := range f.say(a, class) {
					add(ph.pre)
					add(ph.post)
				}
			})
		}
	}
	words := make([]string, 0, len(set))
	for w := range set {
		words = append(words, w)
	}
	sort.Strings(words)
	return words
}

// forEachAssignment calls fn with a set to every combination of synthfaces values of keys.
func forEachAssignment(keys []string, a map[string]string, fn func(map[string]string)) {
	if len(keys) == 0 {
		fn(a)
		return
	}
	for _, v := range synthfaces.Values(keys[0]) {
		a[keys[0]] = v
		forEachAssignment(keys[1:], a, fn)
	}
	delete(a, keys[0])
}
