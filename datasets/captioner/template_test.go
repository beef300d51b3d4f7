package captioner

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cocoflow/cocoflow/datasets/celeba"
	"github.com/cocoflow/cocoflow/datasets/phrases"
	"github.com/cocoflow/cocoflow/datasets/synthfaces"
	"github.com/cocoflow/cocoflow/models/text"
)

// randomSynthfaces returns a synthfaces request of class with every key the class carries set
// to a random allowed value.
func randomSynthfaces(rng *rand.Rand, class string, seed uint64) Request {
	identity, image := synthfaces.ClassKeys(class)
	a := map[string]string{}
	for _, k := range append(identity, image...) {
		vals := synthfaces.Values(k)
		a[k] = vals[rng.IntN(len(vals))]
	}
	return Request{ID: fmt.Sprintf("sf-%d", seed), Class: class, Scene: a["scene"], Attributes: a, Seed: seed, N: 3}
}

// celebaRequest returns a CelebA request with the named attributes set and the others "-1".
func celebaRequest(class string, seed uint64, set ...string) Request {
	a := map[string]string{}
	for _, n := range celeba.AttributeNames {
		a[n] = "-1"
	}
	for _, n := range set {
		a[n] = "1"
	}
	return Request{ID: "000001.jpg", Class: class, Attributes: a, Seed: seed, N: 4}
}

var badArticle = regexp.MustCompile(`\b(a [aeiou]|an [^aeiou])`)

// checkCaptions asserts the properties every template caption has.
func checkCaptions(t *testing.T, r Request, caps []Caption, want int) {
	t.Helper()
	if len(caps) != want {
		t.Fatalf("%s: got %d captions, want %d", r.ID, len(caps), want)
	}
	class := strings.ToLower(r.Class)
	seen := map[string]bool{}
	for _, c := range caps {
		if seen[c.Text] {
			t.Errorf("%s: caption %q repeated in %q", r.ID, c.Text, texts(caps))
		}
		seen[c.Text] = true
		if c.Concept != class {
			t.Errorf("%s: %q: concept %q, want %q", r.ID, c.Text, c.Concept, class)
		}
		if c.ConceptStart < 0 || c.ConceptStart+len(class) > len(c.Text) || c.Text[c.ConceptStart:c.ConceptStart+len(class)] != class {
			t.Errorf("%s: %q: concept offset %d does not point at %q", r.ID, c.Text, c.ConceptStart, class)
		}
		if w, start, ok := FindConcept(c.Text, []string{class}); !ok || start != c.ConceptStart {
			t.Errorf("%s: %q: FindConcept = %q, %d, %v; want offset %d", r.ID, c.Text, w, start, ok, c.ConceptStart)
		}
		if c.Text != strings.ToLower(c.Text) || !strings.HasSuffix(c.Text, ".") || strings.Contains(c.Text, "  ") {
			t.Errorf("%s: %q: want lower-case words, single spaces and a final period", r.ID, c.Text)
		}
		if m := badArticle.FindString(c.Text); m != "" {
			t.Errorf("%s: %q: wrong article in %q", r.ID, c.Text, m)
		}
	}
}

func TestTemplateSynthfaces(t *testing.T) {
	tpl := NewTemplate()
	lex := map[string]bool{}
	for _, w := range tpl.Lexicon() {
		lex[w] = true
	}
	rng := rand.New(rand.NewPCG(1, 2))
	classes := append(slices.Clone(synthfaces.HumanClasses), synthfaces.PetClasses...)
	withScene, withAttr := 0, 0
	total := 0
	for i := range 600 {
		r := randomSynthfaces(rng, classes[i%len(classes)], uint64(i))
		caps, err := tpl.Caption(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		checkCaptions(t, r, caps, 3)
		for _, c := range caps {
			total++
			for _, w := range text.SplitWords(c.Text) {
				if !lex[w] {
					t.Errorf("%s: %q: word %q is not in the lexicon", r.ID, c.Text, w)
				}
			}
			if slices.ContainsFunc(phrases.Scene(r.Scene), func(s string) bool { return strings.Contains(c.Text, s) }) {
				withScene++
			}
			if strings.Contains(c.Text, " with ") || strings.Contains(c.Text, "wearing") {
				withAttr++
			}
		}
	}
	// Most captions say the scene; some but not all carry attributes.
	if withScene < total/2 || withScene == total {
		t.Errorf("%d of %d captions mention the scene, want most but not all", withScene, total)
	}
	if withAttr == 0 || withAttr == total {
		t.Errorf("%d of %d captions carry a with/wearing phrase, want some", withAttr, total)
	}
}

// TestTemplateRealWorld captions samples rendered by synthfaces itself.
func TestTemplateRealWorld(t *testing.T) {
	classes := append(slices.Clone(synthfaces.HumanClasses), synthfaces.PetClasses...)
	w, err := synthfaces.New(synthfaces.Config{Seed: 7, Identities: len(classes), ImagesPerIdentity: 2, Classes: classes})
	if err != nil {
		t.Fatal(err)
	}
	tpl := NewTemplate()
	lex := tpl.Lexicon()
	for i := range w.Len() {
		s, err := w.At(i)
		if err != nil {
			t.Fatal(err)
		}
		r := Request{ID: s.ID, Class: s.Class, Scene: s.Scene, Attributes: s.Attributes, Seed: uint64(i), N: 2}
		caps, err := tpl.Caption(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		checkCaptions(t, r, caps, 2)
		for _, c := range caps {
			for _, word := range text.SplitWords(c.Text) {
				if _, found := slices.BinarySearch(lex, word); !found {
					t.Errorf("%s: %q: word %q not in the lexicon", s.ID, c.Text, word)
				}
			}
		}
		t.Logf("%s %v: %q", s.ID, s.Attributes, []string{caps[0].Text, caps[1].Text})
	}
}

func TestTemplateRevealsAtMostMaxAttributesKeys(t *testing.T) {
	for _, max := range []int{0, 2, 4} {
		limit := max
		if limit == 0 {
			limit = 2
		}
		rng := rand.New(rand.NewPCG(3, 4))
		counts := make([]int, limit+1)
		for i := range 400 {
			r := randomSynthfaces(rng, synthfaces.HumanClasses[i%len(synthfaces.HumanClasses)], uint64(i))
			p, err := newPlan(r, countWeights(max))
			if err != nil {
				t.Fatal(err)
			}
			c, keys := p.compose(rng)
			if len(keys) > limit {
				t.Fatalf("MaxAttributes %d: %q reveals %d keys %v, want at most %d", max, c.Text, len(keys), keys, limit)
			}
			counts[len(keys)]++
		}
		for n, c := range counts {
			if c == 0 {
				t.Errorf("MaxAttributes %d: no caption revealed %d keys in 400 draws (counts %v)", max, n, counts)
			}
		}
	}
}

func TestTemplateNegativeMaxAttributes(t *testing.T) {
	r := randomSynthfaces(rand.New(rand.NewPCG(1, 2)), "man", 7)
	_, err := (&Template{MaxAttributes: -1}).Caption(context.Background(), r)
	if err == nil || !strings.Contains(err.Error(), "MaxAttributes") {
		t.Fatalf("got %v, want an error naming MaxAttributes", err)
	}
}

func TestTemplateDeterministic(t *testing.T) {
	tpl := NewTemplate()
	rng := rand.New(rand.NewPCG(5, 6))
	r := randomSynthfaces(rng, "woman", 42)
	r.N = 5
	a, err := tpl.Caption(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tpl.Caption(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a, b) {
		t.Fatalf("same request, different captions:\n%v\n%v", a, b)
	}
	differ := 0
	for seed := range uint64(10) {
		r.Seed = 1000 + seed
		c, err := tpl.Caption(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(a, c) {
			differ++
		}
	}
	if differ < 9 {
		t.Errorf("only %d of 10 other seeds changed the captions", differ)
	}
}

func TestTemplateCelebA(t *testing.T) {
	tpl := NewTemplate()
	tests := []struct {
		class  string
		set    []string
		want   []string // words each caption may use for the set attributes
		forbid []string // words no caption may contain
	}{
		{"woman", []string{"Smiling", "Blond_Hair", "Wavy_Hair", "Wearing_Lipstick", "Young"},
			[]string{"smiling", "blond", "wavy", "lipstick"}, []string{"glasses", "hat", "beard", "bald", "in a", "at the"}},
		{"man", []string{"Male", "Eyeglasses", "Bald", "Gray_Hair"},
			[]string{"glasses", "eyeglasses", "bald", "beard", "bearded"}, []string{"gray", "smiling", "lipstick"}},
		{"boy", []string{"Male", "Young"}, []string{"beard", "bearded"}, []string{"glasses", "smiling"}},
	}
	for _, tt := range tests {
		t.Run(tt.class, func(t *testing.T) {
			anyAttr := false
			for seed := range uint64(30) {
				r := celebaRequest(tt.class, seed, tt.set...)
				caps, err := tpl.Caption(context.Background(), r)
				if err != nil {
					t.Fatal(err)
				}
				checkCaptions(t, r, caps, 4)
				for _, c := range caps {
					for _, f := range tt.forbid {
						if strings.Contains(c.Text, f) {
							t.Errorf("%q contains %q, which the attributes do not say", c.Text, f)
						}
					}
					for _, w := range tt.want {
						if slices.Contains(text.SplitWords(c.Text), w) {
							anyAttr = true
						}
					}
				}
			}
			if !anyAttr {
				t.Errorf("no caption of 30 seeds mentions any of %v", tt.want)
			}
		})
	}
}

// TestCelebANamesCovered checks that the template accepts all 40 CelebA names.
func TestCelebANamesCovered(t *testing.T) {
	for _, n := range celeba.AttributeNames {
		if !celebaNames[n] {
			t.Errorf("CelebA attribute %s unknown to the template captioner", n)
		}
	}
	if len(celebaNames) != len(celeba.AttributeNames) {
		t.Errorf("template knows %d CelebA names, want %d", len(celebaNames), len(celeba.AttributeNames))
	}
}

func TestTemplateNoAttributes(t *testing.T) {
	tpl := NewTemplate()
	for _, class := range []string{"cat", "dog", "person"} {
		r := Request{ID: "flickr_" + class + "_000002.jpg", Class: class, Seed: 9, N: 5}
		caps, err := tpl.Caption(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		checkCaptions(t, r, caps, 5)
		for _, c := range caps {
			if strings.Contains(c.Text, " in ") || strings.Contains(c.Text, " with ") {
				t.Errorf("%q: an attribute-less request without a scene got a scene or attribute", c.Text)
			}
		}
		t.Logf("%s: %q", class, texts(caps))
	}
	// A scene without attributes is still said.
	r := Request{ID: "x", Class: "Cat", Scene: "garden", Seed: 1, N: 8}
	caps, err := tpl.Caption(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	checkCaptions(t, r, caps, 8)
	if !slices.ContainsFunc(caps, func(c Caption) bool { return strings.Contains(c.Text, "in a garden") }) {
		t.Errorf("no caption of %q says the scene", texts(caps))
	}
}

func TestTemplateErrors(t *testing.T) {
	sf := map[string]string{"hair_color": "red", "skin": "tan"}
	tests := []struct {
		name string
		r    Request
		want string
	}{
		{"no class", Request{ID: "img7", Class: " "}, "image img7: class"},
		{"negative N", Request{ID: "img7", Class: "man", N: -1}, "N: want >= 0"},
		{"too many captions", Request{ID: "img7", Class: "dog", N: 500}, "found only"},
		{"unknown keys", Request{ID: "img7", Class: "man", Attributes: map[string]string{"foo": "1"}}, "got foo"},
		{"mixed vocabularies", Request{ID: "img7", Class: "man", Attributes: map[string]string{"skin": "tan", "Smiling": "1"}}, "not both"},
		{"bad synthfaces value", Request{ID: "img7", Class: "man", Attributes: map[string]string{"hair_color": "teal"}}, `attribute hair_color: want one of`},
		{"bad synthfaces scene", Request{ID: "img7", Class: "man", Scene: "moon", Attributes: sf}, `scene: want one of park`},
		{"bad celeba value", Request{ID: "000001.jpg", Class: "man", Attributes: map[string]string{"Smiling": "yes"}}, `attribute Smiling: want "1" or "-1", got "yes"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caps, err := NewTemplate().Caption(context.Background(), tt.r)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.r.ID) {
				t.Fatalf("err = %v (captions %q), want one naming %s and containing %q", err, texts(caps), tt.r.ID, tt.want)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewTemplate().Caption(ctx, Request{ID: "a", Class: "man"}); err == nil {
		t.Error("cancelled context: want an error")
	}
}

func TestLexicon(t *testing.T) {
	lex := NewTemplate().Lexicon()
	if !slices.IsSorted(lex) || len(slices.Compact(slices.Clone(lex))) != len(lex) {
		t.Fatalf("lexicon not sorted and unique: %v", lex)
	}
	for _, w := range append(slices.Clone(synthfaces.HumanClasses), "cat", "dog", ".", ",", "a", "an", "park", "curly") {
		if _, ok := slices.BinarySearch(lex, w); !ok {
			t.Errorf("lexicon lacks %q", w)
		}
	}
	if _, err := text.NewWordTokenizer(lex, 32); err != nil {
		t.Fatalf("lexicon is not a valid word vocabulary: %v", err)
	}
	t.Logf("%d words", len(lex))
}

// texts returns the texts of caps.
func texts(caps []Caption) []string {
	out := make([]string, len(caps))
	for i, c := range caps {
		out[i] = c.Text
	}
	return out
}
