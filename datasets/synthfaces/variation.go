package synthfaces

import (
	"math"
	"math/rand/v2"
)

// variation is everything that changes from one image of an identity to the
// next.
type variation struct {
	scene string

	// pose: head centre (image fractions), relative scale, in-plane tilt
	// (radians) and a yaw-like shift of the inner features (-1..1, positive
	// turns the face towards the image's right).
	cx, cy, scale, tilt, yaw float32

	expression string

	lighting   string
	brightness float32
	gradAngle  float32 // direction of the light gradient
	gradAmount float32
	tint       rgb

	glasses, hat, earrings, shirt, collar string
	hatCol, frameCol, shirtCol, collarCol rgb
}

// drawVariation draws the image-level parameters of one image of id.
func drawVariation(r *rand.Rand, id *Identity) variation {
	p := &id.p
	pet := isPet(id.Class)
	v := variation{}
	v.scene = Scenes[r.IntN(len(Scenes))]
	if r.IntN(2) == 0 {
		v.yaw = uniform(r, -0.25, 0.25)
	} else {
		v.yaw = uniform(r, 0.45, 1)
		if r.IntN(2) == 0 {
			v.yaw = -v.yaw
		}
	}
	v.cx = 0.5 + uniform(r, -0.06, 0.06)
	v.cy = 0.44 + uniform(r, -0.03, 0.03)
	if p.child {
		v.cy += childDrop
	}
	if pet {
		v.cy += 0.03
	}
	v.scale = uniform(r, 0.93, 1.07)
	v.tilt = uniform(r, -0.15, 0.15)

	// bright soft dim
	switch weighted(r, []float32{30, 45, 25}) {
	case 0:
		v.lighting, v.brightness = "bright", uniform(r, 1.1, 1.22)
	case 1:
		v.lighting, v.brightness = "soft", uniform(r, 0.94, 1.04)
	default:
		v.lighting, v.brightness = "dim", uniform(r, 0.58, 0.72)
	}
	v.gradAngle = uniform(r, 0, 2*math.Pi)
	v.gradAmount = uniform(r, 0, 0.45)
	v.tint = rgb{1 + uniform(r, -0.04, 0.04), 1, 1 + uniform(r, -0.04, 0.04)}

	if pet {
		v.expression = pickWord(r, "expression", []float32{45, 0, 0, 0, 20, 35})
		v.collar = "none"
		if r.IntN(2) == 0 {
			c := pick(r, collarColors, nil)
			v.collar, v.collarCol = c.name, c.col
		}
		return v
	}

	// none glasses sunglasses
	gw := []float32{75, 15, 10}
	if p.child {
		gw = []float32{85, 10, 5}
	}
	v.glasses = pickWord(r, "glasses", gw)
	v.frameCol = []rgb{hex(0x1a1a1a), hex(0x6a3a1a), hex(0xb02020), hex(0x2040a0), hex(0xc0a040)}[r.IntN(5)]
	// neutral smiling laughing surprised sleepy happy
	ew := []float32{35, 30, 12, 10, 8, 0}
	if v.glasses == "sunglasses" {
		ew[4] = 0 // closed eyes would be invisible
	}
	v.expression = pickWord(r, "expression", ew)
	// none cap beanie sunhat
	v.hat = pickWord(r, "hat", []float32{70, 12, 10, 8})
	v.hatCol = accessoryColors[r.IntN(len(accessoryColors))]
	v.earrings = "none"
	if p.hairStyle != "long" && p.hairStyle != "bob" && r.Float32() < 0.05+0.45*p.fem*p.fem {
		v.earrings = "hoops"
	}
	s := pick(r, shirtColors, nil)
	v.shirt, v.shirtCol = s.name, s.col
	return v
}

// light returns the lighting field: brightness times a linear directional
// gradient times a small colour tint, at (x, y) in image fractions.
func (v *variation) light() func(x, y float32) rgb {
	dx := float32(math.Cos(float64(v.gradAngle))) * v.gradAmount
	dy := float32(math.Sin(float64(v.gradAngle))) * v.gradAmount
	b, t := v.brightness, v.tint
	return func(x, y float32) rgb {
		k := b * (1 + dx*(x-0.5) + dy*(y-0.5))
		return rgb{k * t.r, k, k * t.b}
	}
}

// poseWord is the reported pose: the side of the image the face is turned to.
func (v *variation) poseWord() string {
	switch {
	case v.yaw < -0.35:
		return "left"
	case v.yaw > 0.35:
		return "right"
	}
	return "frontal"
}

// attributes adds the image-level attributes of class to a.
func (v *variation) attributes(class string, a map[string]string) {
	a["scene"], a["pose"], a["expression"], a["lighting"] = v.scene, v.poseWord(), v.expression, v.lighting
	if isPet(class) {
		a["collar"] = v.collar
		return
	}
	a["glasses"], a["hat"], a["earrings"], a["shirt"] = v.glasses, v.hat, v.earrings, v.shirt
}
