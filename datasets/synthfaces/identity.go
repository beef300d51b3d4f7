package synthfaces

import (
	"maps"
	"math/rand/v2"
	"strings"
)

// Identity is one subject of a world: its class word, its identity-level
// attributes (plain English values under the keys of ClassKeys) and the hidden
// continuous parameters that make it unique.
type Identity struct {
	Index      int               // position in the world, 0-based
	Class      string            // class word, e.g. "woman" or "dog"
	Attributes map[string]string // identity-level attributes only
	p          params
}

// params are the rendering parameters of an identity, in head-local units
// (head half-height = 1).
type params struct {
	// shared by humans and pets
	eye                       rgb     // iris colour
	w, h, sq, taper           float32 // head outline
	eyeSpacing, eyeY, eyeSize float32
	headScale                 float32 // relative head size in the image

	// humans
	child            bool
	hood             bool    // "person" identities wear a hoodie whose hood frames the head
	fem              float32 // 0 = masculine build .. 1 = feminine build
	skin, hair, lip  rgb
	hairStyle, brows string
	nose, beard      string
	mouthW, mouthY   float32
	parting          float32 // -1..1, side of the hair parting

	// pets
	fur, fur2, muzzle, noseCol rgb
	pattern, ears, snout       string
	spots                      []ellipse // spotted pattern, head frame
	bodySpots                  []ellipse // spotted pattern, body frame
	patchSide                  float32   // patched pattern: -1 left, +1 right
	bib                        bool      // light chest patch
}

// weighted picks an index with probability proportional to w (zero weights
// are never picked).
func weighted(r *rand.Rand, w []float32) int {
	var sum float32
	for _, x := range w {
		sum += x
	}
	t := r.Float32() * sum
	for i, x := range w {
		if t < x {
			return i
		}
		t -= x
	}
	for i := len(w) - 1; i >= 0; i-- {
		if w[i] > 0 {
			return i
		}
	}
	return 0
}

// uniform returns a value in [lo, hi).
func uniform(r *rand.Rand, lo, hi float32) float32 { return lo + (hi-lo)*r.Float32() }

// jitterColor scales a colour by a small random brightness and tint so that
// identities sharing a palette entry still differ slightly.
func jitterColor(r *rand.Rand, c rgb, amount float32) rgb {
	k := 1 + uniform(r, -amount, amount)
	t := uniform(r, -amount, amount) / 2
	return rgb{c.r * k * (1 + t), c.g * k, c.b * k * (1 - t)}
}

// pick chooses from a palette with weights (nil weights = uniform).
func pick(r *rand.Rand, pal []named, w []float32) named {
	if w == nil {
		return pal[r.IntN(len(pal))]
	}
	return pal[weighted(r, w)]
}

// pickWord chooses a word of Values(key) by weights given in that order.
func pickWord(r *rand.Rand, key string, w []float32) string {
	return values[key][weighted(r, w)]
}

// newIdentity draws identity index of class from stream r.
func newIdentity(r *rand.Rand, index int, class string) Identity {
	id := Identity{Index: index, Class: class, Attributes: map[string]string{}}
	if isPet(class) {
		drawPetIdentity(r, &id)
	} else {
		drawHumanIdentity(r, &id)
	}
	return id
}

// Children are drawn smaller and lower in the frame than adults (the head at
// about three quarters of an adult's, with more background above it): the cue
// that tells a "boy" from a "man" at 32 px, besides rounder faces and larger eyes.
const (
	childHeadScale = 0.74
	childDrop      = 0.1 // added to the head centre's y, in image heights
)

func drawHumanIdentity(r *rand.Rand, id *Identity) {
	p := &id.p
	a := id.Attributes
	class := id.Class
	p.child = class == "boy" || class == "girl"
	p.hood = class == "person"
	switch class {
	case "man":
		p.fem = 0
	case "woman":
		p.fem = 1
	case "boy":
		p.fem = 0.15
	case "girl":
		p.fem = 0.85
	default:
		p.fem = r.Float32()
	}

	skin := pick(r, skinTones, nil)
	hairW := []float32{20, 20, 16, 12, 10, 6, 6} // black brown blond red grey blue pink
	if p.child {
		hairW[4] = 0
	}
	hair := pick(r, hairColors, hairW)
	// bald short spiky curly bob long bun. Men and boys wear their hair short,
	// women and girls long, so that at 32 px the class word names something
	// the image shows (the hair is the largest feature after the background).
	styleW := map[string][]float32{
		"man":    {14, 40, 18, 20, 0, 0, 0},
		"woman":  {0, 0, 0, 0, 30, 48, 22},
		"boy":    {0, 60, 40, 0, 0, 0, 0},
		"girl":   {0, 0, 0, 0, 30, 45, 25},
		"person": {5, 16, 8, 16, 12, 16, 8},
	}[class]
	style := pickWord(r, "hair_style", styleW)
	eye := pick(r, humanEyeColors, nil)
	// round oval long square
	shapeW := map[string][]float32{
		"man": {20, 25, 20, 35}, "woman": {25, 40, 20, 15}, "boy": {55, 35, 0, 10},
		"girl": {55, 40, 0, 5}, "person": {25, 25, 25, 25},
	}[class]
	shape := pickWord(r, "face_shape", shapeW)
	// thin thick arched
	browW := []float32{30, 30, 30}
	switch {
	case p.fem < 0.3:
		browW = []float32{20, 55, 25}
	case p.fem > 0.7:
		browW = []float32{40, 15, 45}
	}
	brows := pickWord(r, "brows", browW)
	nose := pickWord(r, "nose", []float32{1, 1, 1})
	mouth := pickWord(r, "mouth", []float32{1, 1})
	// none stubble moustache goatee full
	beardW := []float32{1, 0, 0, 0, 0}
	switch class {
	case "man":
		beardW = []float32{40, 14, 12, 12, 22}
	case "person":
		if p.fem < 0.5 {
			beardW = []float32{70, 8, 7, 7, 8}
		}
	}
	beard := pickWord(r, "beard", beardW)

	p.skin = jitterColor(r, skin.col, 0.05)
	p.hair = jitterColor(r, hair.col, 0.06)
	p.eye = eye.col
	p.hairStyle, p.brows, p.nose, p.beard = style, brows, nose, beard
	lipRed := 0.3 + 0.35*p.fem
	p.lip = p.skin.scale(0.8).mix(hex(0xb8303c), lipRed)

	switch shape {
	case "round":
		p.w, p.sq, p.taper = 0.88, 0.1, 0.08
	case "oval":
		p.w, p.sq, p.taper = 0.77, 0, 0.16
	case "long":
		p.w, p.sq, p.taper = 0.67, 0.15, 0.1
	case "square":
		p.w, p.sq, p.taper = 0.82, 0.75, 0.02
	}
	p.h = 1
	p.w *= 1 + uniform(r, -0.04, 0.04)
	p.eyeSpacing = uniform(r, 0.93, 1.08)
	p.eyeY = uniform(r, -0.08, 0)
	p.eyeSize = uniform(r, 0.92, 1.08)
	p.headScale = uniform(r, 0.96, 1.04)
	p.mouthY = 0.55 + uniform(r, -0.03, 0.03)
	p.mouthW = 0.17
	if mouth == "wide" {
		p.mouthW = 0.26
	}
	p.mouthW *= 1 + uniform(r, -0.08, 0.08)
	p.parting = uniform(r, -1, 1)
	if p.child {
		p.w *= 1.1
		p.sq *= 0.5
		p.taper *= 0.5
		p.eyeSize *= 1.4
		p.eyeY += 0.12
		p.mouthY -= 0.02
		p.mouthW *= 0.85
		p.headScale *= childHeadScale
	}

	a["skin"], a["hair_color"], a["hair_style"], a["eye_color"] = skin.name, hair.name, style, eye.name
	a["face_shape"], a["brows"], a["nose"], a["mouth"], a["beard"] = shape, brows, nose, mouth, beard
}

func drawPetIdentity(r *rand.Rand, id *Identity) {
	p := &id.p
	a := id.Attributes
	cat := id.Class == "cat"
	fur := pick(r, furColors, nil)
	var pattern, ears, snout string
	var eye named
	if cat {
		pattern = pickWord(r, "pattern", []float32{30, 20, 30, 20})
		ears = pickWord(r, "ears", []float32{60, 20, 0, 20})
		snout = pickWord(r, "snout", []float32{70, 0, 30})
		eye = pick(r, catEyeColors, nil)
	} else {
		pattern = pickWord(r, "pattern", []float32{35, 25, 10, 30})
		ears = pickWord(r, "ears", []float32{30, 0, 50, 20})
		snout = pickWord(r, "snout", []float32{30, 55, 15})
		eye = pick(r, dogEyeColors, nil)
	}
	p.fur = jitterColor(r, fur.col, 0.05)
	p.eye = eye.col
	p.pattern, p.ears, p.snout = pattern, ears, snout

	// Secondary (pattern) colour: contrasting, a function of the fur colour.
	white, black := hex(0xf4f2ec), hex(0x262220)
	switch fur.name {
	case "black":
		p.fur2 = []rgb{white, hex(0x8a5a30)}[r.IntN(2)]
	case "white":
		p.fur2 = []rgb{black, hex(0x7a4a26), hex(0xe08a32)}[r.IntN(3)]
	case "grey":
		p.fur2 = []rgb{hex(0x45464a), white}[r.IntN(2)]
	case "orange":
		p.fur2 = []rgb{hex(0x9a4a10), white}[r.IntN(2)]
	case "brown":
		p.fur2 = []rgb{hex(0x3a2210), white}[r.IntN(2)]
	default: // golden
		p.fur2 = []rgb{white, hex(0x7a4a26)}[r.IntN(2)]
	}
	if pattern == "striped" {
		p.fur2 = p.fur.scale(0.55)
		if fur.name == "black" {
			p.fur2 = hex(0x5a5450)
		}
	}
	p.muzzle = p.fur.mix(white, 0.55)
	if fur.name == "white" || r.IntN(3) == 0 {
		p.muzzle = white
	}
	p.bib = r.IntN(2) == 0
	dark := fur.name == "black" || fur.name == "brown"
	if cat {
		p.noseCol = hex(0xe88a9a)
		if dark && r.IntN(2) == 0 {
			p.noseCol = hex(0x3a2a2a)
		}
		p.w, p.h, p.taper = 1.05, 0.86, 0.1
	} else {
		p.noseCol = hex(0x1c1a1a)
		if fur.name == "brown" || fur.name == "golden" && r.IntN(2) == 0 {
			p.noseCol = hex(0x6a3a24)
		}
		p.w, p.h, p.taper = 0.9, 0.95, 0.16
	}
	p.w *= 1 + uniform(r, -0.05, 0.05)
	p.h *= 1 + uniform(r, -0.04, 0.04)
	p.eyeSpacing = uniform(r, 0.92, 1.08)
	p.eyeY = uniform(r, -0.16, -0.06)
	p.eyeSize = uniform(r, 0.9, 1.1)
	p.headScale = uniform(r, 0.95, 1.05)
	if pattern == "spotted" {
		for range 4 + r.IntN(4) {
			p.spots = append(p.spots, circle(uniform(r, -0.85, 0.85), uniform(r, -0.85, 0.6), uniform(r, 0.1, 0.22)))
		}
		for range 3 + r.IntN(3) {
			p.bodySpots = append(p.bodySpots, circle(uniform(r, -1.1, 1.1), uniform(r, 1.3, 2.4), uniform(r, 0.12, 0.25)))
		}
	}
	p.patchSide = 1
	if r.IntN(2) == 0 {
		p.patchSide = -1
	}
	a["fur_color"], a["pattern"], a["ears"], a["snout"], a["eye_color"] = fur.name, pattern, ears, snout, eye.name
}

// coarseKey is the part of an identity that is visible at 32 px: the world
// prefers identities that differ in it.
func (id *Identity) coarseKey() string {
	a := id.Attributes
	if isPet(id.Class) {
		return id.Class + "|" + a["fur_color"] + "|" + a["pattern"] + "|" + a["ears"]
	}
	return id.Class + "|" + a["skin"] + "|" + a["hair_color"] + "|" + a["hair_style"]
}

// fullKey is the class plus every identity-level discrete attribute; no two
// identities of a world share it.
func (id *Identity) fullKey() string {
	keys, _ := ClassKeys(id.Class)
	var b strings.Builder
	b.WriteString(id.Class)
	for _, k := range keys {
		b.WriteByte('|')
		b.WriteString(id.Attributes[k])
	}
	return b.String()
}

// clone returns a copy whose attribute map the caller may change.
func (id Identity) clone() Identity {
	id.Attributes = maps.Clone(id.Attributes)
	return id
}
