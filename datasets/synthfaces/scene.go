package synthfaces

import (
	"math"
	"math/rand/v2"
)

// Backgrounds. Each scene has its own palette and layout (sky and horizon,
// walls and furniture) with random placement and colour variation; all
// coordinates are image fractions. Nothing here belongs to the subject.

// drawScene paints the background named scene over the whole canvas.
func drawScene(c *canvas, scene string, r *rand.Rand) {
	t := frame(c.n, 0, 0, 1, 0)
	switch scene {
	case "park":
		park(c, t, r)
	case "beach":
		beach(c, t, r)
	case "office":
		office(c, t, r)
	case "kitchen":
		kitchen(c, t, r)
	case "street":
		street(c, t, r)
	case "forest":
		forest(c, t, r)
	case "stage":
		stage(c, t, r)
	default:
		library(c, t, r)
	}
}

// jit returns col scaled by a random brightness within ±amount.
func jit(r *rand.Rand, col rgb, amount float32) rgb {
	return col.scale(1 + uniform(r, -amount, amount))
}

func oneOf(r *rand.Rand, cols ...rgb) rgb { return cols[r.IntN(len(cols))] }

// sideX returns an x in [lo, hi) near the left edge or its mirror near the
// right edge, with equal chance: a place beside the subject.
func sideX(r *rand.Rand, lo, hi float32) float32 {
	x := uniform(r, lo, hi)
	if r.IntN(2) == 0 {
		return 1 - x
	}
	return x
}

var white = hex(0xffffff)

func cloud(c *canvas, t affine, r *rand.Rand, x, y, s float32, col rgb) {
	c.paint(t, unionOf(
		ellipse{x, y, 0.09 * s, 0.04 * s},
		circle(x-0.03*s, y-0.025*s, 0.035*s),
		circle(x+0.025*s, y-0.03*s, 0.045*s),
	), col, uniform(r, 0.8, 1), false)
}

func tree(c *canvas, t affine, r *rand.Rand, x, base, height float32) {
	trunk := jit(r, hex(0x6a4424), 0.15)
	c.paint(t, rect{x - 0.02, base - height*0.55, x + 0.02, base}, trunk, 1, false)
	leaf := jit(r, oneOf(r, hex(0x2f8a36), hex(0x3c9e3a), hex(0x276e2c)), 0.1)
	rad := height * 0.32
	top := base - height*0.65
	c.paint(t, unionOf(
		circle(x, top-rad*0.3, rad),
		circle(x-rad*0.7, top+rad*0.2, rad*0.75),
		circle(x+rad*0.7, top+rad*0.2, rad*0.75),
	), leaf, 1, false)
	c.paint(t, circle(x-rad*0.3, top-rad*0.6, rad*0.35), leaf.mix(white, 0.2), 0.6, false)
}

func park(c *canvas, t affine, r *rand.Rand) {
	horizon := uniform(r, 0.55, 0.68)
	c.vgradient(0, horizon, jit(r, hex(0x5aa6ea), 0.08), hex(0xcfe8f8))
	c.vgradient(horizon, 1, jit(r, hex(0x78c850), 0.08), jit(r, hex(0x3f9632), 0.08))
	for range 1 + r.IntN(2) {
		cloud(c, t, r, uniform(r, 0.05, 0.95), uniform(r, 0.08, 0.3), uniform(r, 0.8, 1.4), white)
	}
	// distant hedge along the horizon
	hedge := jit(r, hex(0x2e7a30), 0.1)
	for x := float32(-0.05); x < 1.1; x += 0.09 {
		c.paint(t, ellipse{x + uniform(r, -0.02, 0.02), horizon, 0.07, uniform(r, 0.03, 0.06)}, hedge, 1, false)
	}
	if r.IntN(2) == 0 {
		c.paint(t, poly{{0.45, horizon}, {0.55, horizon}, {0.85, 1.01}, {0.15, 1.01}}, jit(r, hex(0xdcc890), 0.08), 1, false)
	}
	xs := []float32{uniform(r, 0.02, 0.2), uniform(r, 0.8, 0.98)}
	if r.IntN(2) == 0 {
		xs = append(xs, uniform(r, 0.3, 0.7))
	}
	for _, x := range xs {
		tree(c, t, r, x, horizon+uniform(r, 0.02, 0.12), uniform(r, 0.4, 0.6))
	}
	for range 6 {
		col := oneOf(r, hex(0xf04040), hex(0xf0e040), hex(0xffffff), hex(0xe070e0))
		c.paint(t, circle(uniform(r, 0, 1), uniform(r, horizon+0.05, 1), 0.012), col, 1, false)
	}
}

func beach(c *canvas, t affine, r *rand.Rand) {
	horizon := uniform(r, 0.42, 0.55)
	shore := horizon + uniform(r, 0.12, 0.2)
	c.vgradient(0, horizon, jit(r, hex(0x3c9cf0), 0.08), hex(0xc4e8fc))
	if r.IntN(2) == 0 {
		c.paint(t, circle(uniform(r, 0.08, 0.92), uniform(r, 0.08, 0.2), 0.06), hex(0xfff27a), 1, false)
	}
	c.vgradient(horizon, shore, jit(r, hex(0x1a62b8), 0.08), jit(r, hex(0x30c0cc), 0.08))
	sand := jit(r, hex(0xf2dca0), 0.05)
	c.vgradient(shore, 1, sand, sand.scale(0.9))
	ph := uniform(r, 0, 6.3)
	c.paint(t, fn{box{0, shore - 0.03, 1, shore + 0.03}, func(x, y float32) bool {
		d := y - shore + 0.012*float32(math.Sin(float64(x*30+ph)))
		return d > -0.018 && d < 0.008
	}}, white, 0.9, false)
	if r.IntN(3) == 0 { // sailing boat
		x := uniform(r, 0.1, 0.9)
		c.paint(t, poly{{x, horizon + 0.01}, {x, horizon - 0.09}, {x + 0.06, horizon + 0.01}}, white, 1, false)
	}
	if r.IntN(2) == 0 { // parasol
		x := sideX(r, 0.05, 0.2)
		top := shore - uniform(r, 0.05, 0.12)
		c.paint(t, capsule{x, top, x, 1, 0.008}, hex(0x8a6a4a), 1, false)
		a, b := oneOf(r, hex(0xe02828), hex(0x2860e0), hex(0xf0a020)), white
		c.paint(t, fn{box{x - 0.16, top - 0.09, x + 0.16, top}, func(px, py float32) bool {
			u, v := (px-x)/0.16, (py-top)/0.09
			return u*u+v*v <= 1 && v <= 0 && int(math.Floor(float64((u+1)*4)))%2 == 0
		}}, a, 1, false)
		c.paint(t, fn{box{x - 0.16, top - 0.09, x + 0.16, top}, func(px, py float32) bool {
			u, v := (px-x)/0.16, (py-top)/0.09
			return u*u+v*v <= 1 && v <= 0 && int(math.Floor(float64((u+1)*4)))%2 == 1
		}}, b, 1, false)
	}
}

func office(c *canvas, t affine, r *rand.Rand) {
	wall := jit(r, oneOf(r, hex(0xd8d4cc), hex(0xc4d0da), hex(0xe4dcc4)), 0.05)
	c.vgradient(0, 1, wall, wall.scale(0.88))
	c.paint(t, rect{0, 0, 1, 0.03}, hex(0xf4f4f4), 1, false) // ceiling light
	// window with a skyline
	wx := uniform(r, -0.1, 0.6)
	ww := uniform(r, 0.35, 0.5)
	wy0, wy1 := uniform(r, 0.08, 0.14), uniform(r, 0.5, 0.62)
	c.paint(t, rect{wx - 0.015, wy0 - 0.015, wx + ww + 0.015, wy1 + 0.015}, hex(0xf0f0f0), 1, false)
	c.paint(t, rect{wx, wy0, wx + ww, wy1}, jit(r, hex(0x8ec8f0), 0.06), 1, false)
	for x := wx; x < wx+ww; x += uniform(r, 0.05, 0.09) {
		h := uniform(r, 0.08, 0.25)
		c.paint(t, rect{x, wy1 - h, min(x+0.05, wx+ww), wy1}, jit(r, hex(0x8a9ab0), 0.1), 1, false)
	}
	c.paint(t, rect{wx + ww/2 - 0.008, wy0, wx + ww/2 + 0.008, wy1}, hex(0xf0f0f0), 1, false)
	c.paint(t, rect{wx, (wy0+wy1)/2 - 0.008, wx + ww, (wy0+wy1)/2 + 0.008}, hex(0xf0f0f0), 1, false)
	// desk
	deskY := uniform(r, 0.78, 0.85)
	desk := oneOf(r, hex(0x7a5638), hex(0x6a6e74), hex(0xd8d0c0))
	c.paint(t, rect{0, deskY, 1, 1}, desk, 1, false)
	c.paint(t, rect{0, deskY, 1, deskY + 0.012}, desk.scale(1.2), 1, false)
	// monitor on the side away from the window
	mx := uniform(r, 0.72, 0.9)
	if wx > 0.3 {
		mx = uniform(r, 0.1, 0.28)
	}
	c.paint(t, rect{mx - 0.012, deskY - 0.08, mx + 0.012, deskY}, hex(0x303030), 1, false)
	c.paint(t, rect{mx - 0.13, deskY - 0.26, mx + 0.13, deskY - 0.07}, hex(0x202022), 1, false)
	c.paint(t, rect{mx - 0.115, deskY - 0.245, mx + 0.115, deskY - 0.085}, jit(r, hex(0x3c7ad0), 0.15), 1, false)
	if r.IntN(2) == 0 { // potted plant
		px := 1 - mx
		c.paint(t, rect{px - 0.04, deskY - 0.07, px + 0.04, deskY}, hex(0xc06a3a), 1, false)
		for i := range 5 {
			a := float32(i)*0.5 - 1
			c.paint(t, newRotEllipse(px+0.05*a, deskY-0.12, 0.025, 0.07, 0.4*a), hex(0x2f9a3a), 1, false)
		}
	}
}

func kitchen(c *canvas, t affine, r *rand.Rand) {
	tile := jit(r, oneOf(r, hex(0xf2eee6), hex(0xd4ecec), hex(0xf4e6c4)), 0.04)
	c.vgradient(0, 1, tile, tile.scale(0.94))
	ts := uniform(r, 0.06, 0.09)
	ox, oy := uniform(r, 0, ts), uniform(r, 0, ts)
	grout := tile.scale(0.72)
	c.paint(t, fn{box{0, 0.28, 1, 0.75}, func(x, y float32) bool {
		fx := float32(math.Mod(float64(x+ox), float64(ts)))
		fy := float32(math.Mod(float64(y+oy), float64(ts)))
		return fx < 0.007 || fy < 0.007
	}}, grout, 1, false)
	wood := jit(r, oneOf(r, hex(0xb07a40), hex(0xf4f2ec), hex(0x5e8aa4), hex(0x8aa470)), 0.06)
	top := uniform(r, 0.24, 0.3)
	c.paint(t, rect{0, 0, 1, top}, wood, 1, false)
	counter := uniform(r, 0.72, 0.78)
	c.paint(t, rect{0, counter, 1, counter + 0.04}, oneOf(r, hex(0x9a9a9a), hex(0x2e2e32), hex(0xe8e4dc)), 1, false)
	c.paint(t, rect{0, counter + 0.04, 1, 1}, wood.scale(0.95), 1, false)
	ph := uniform(r, 0, 0.2)
	for x := ph; x < 1.1; x += 0.2 {
		c.paint(t, rect{x - 0.004, 0, x + 0.004, top}, wood.scale(0.75), 1, false)
		c.paint(t, rect{x - 0.004, counter + 0.04, x + 0.004, 1}, wood.scale(0.72), 1, false)
		c.paint(t, rect{x + 0.08, top - 0.06, x + 0.09, top - 0.02}, hex(0x404040), 1, false)
		c.paint(t, rect{x + 0.08, counter + 0.07, x + 0.09, counter + 0.11}, hex(0x404040), 1, false)
	}
	// kettle or pot on the counter, at a side
	kx := sideX(r, 0.06, 0.2)
	col := oneOf(r, hex(0xd83030), hex(0xc0c4c8), hex(0x3060c0), hex(0xf0b030))
	c.paint(t, and{ellipse{kx, counter - 0.02, 0.07, 0.08}, rect{kx - 0.1, 0, kx + 0.1, counter}}, col, 1, false)
	c.paint(t, rect{kx - 0.02, counter - 0.12, kx + 0.02, counter - 0.09}, col.scale(0.7), 1, false)
}

func street(c *canvas, t affine, r *rand.Rand) {
	if r.IntN(4) == 0 {
		c.vgradient(0, 0.77, hex(0x6a4a8a), hex(0xf0a070)) // dusk
	} else {
		c.vgradient(0, 0.77, jit(r, hex(0x8cc4f0), 0.06), hex(0xdcecf8))
	}
	for x := uniform(r, -0.15, 0); x < 1; {
		w := uniform(r, 0.14, 0.3)
		top := uniform(r, 0.04, 0.42)
		col := jit(r, oneOf(r, hex(0xa84a34), hex(0xd8c8a4), hex(0x8a8e96), hex(0x5a6a84), hex(0xc88a5a), hex(0xe0e0d8)), 0.08)
		c.paint(t, rect{x, top, x + w - 0.005, 0.76}, col, 1, false)
		lit := r.IntN(2) == 0
		for wy := top + 0.03; wy < 0.7; wy += 0.075 {
			for wx := x + 0.025; wx < x+w-0.04; wx += 0.06 {
				wc := hex(0x34445a)
				if lit && r.IntN(3) > 0 {
					wc = hex(0xf4dc78)
				}
				c.paint(t, rect{wx, wy, wx + 0.03, wy + 0.04}, wc, 1, false)
			}
		}
		x += w
	}
	c.paint(t, rect{0, 0.76, 1, 0.82}, hex(0xb4b4b0), 1, false)
	c.paint(t, rect{0, 0.82, 1, 1}, jit(r, hex(0x3c3c42), 0.1), 1, false)
	ph := uniform(r, 0, 0.2)
	for x := ph - 0.2; x < 1; x += 0.2 {
		c.paint(t, rect{x, 0.9, x + 0.1, 0.915}, oneOf(r, white, hex(0xf0d030)), 1, false)
	}
	lx := sideX(r, 0.04, 0.18)
	c.paint(t, rect{lx - 0.008, 0.25, lx + 0.008, 0.8}, hex(0x2a2a2e), 1, false)
	c.paint(t, circle(lx, 0.24, 0.03), hex(0xfff0a0), 1, false)
}

func forest(c *canvas, t affine, r *rand.Rand) {
	c.vgradient(0, 1, jit(r, hex(0x4c8c44), 0.1), jit(r, hex(0x24482a), 0.1))
	for range 10 {
		x := uniform(r, 0, 1)
		w := uniform(r, 0.015, 0.05)
		c.paint(t, rect{x - w, 0, x + w, 1}, jit(r, hex(0x3a2a1c), 0.25), 1, false)
	}
	for range 9 {
		col := jit(r, oneOf(r, hex(0x2e7a2e), hex(0x4a9a3a), hex(0x1e5a24)), 0.1)
		c.paint(t, circle(uniform(r, 0, 1), uniform(r, -0.05, 0.25), uniform(r, 0.1, 0.2)), col, 1, false)
	}
	ground := uniform(r, 0.76, 0.86)
	c.vgradient(ground, 1, jit(r, hex(0x5a4628), 0.1), hex(0x3a2c18))
	for range 5 {
		c.paint(t, ellipse{uniform(r, 0, 1), ground + uniform(r, 0, 0.08), uniform(r, 0.05, 0.1), 0.035}, hex(0x3a8a30), 1, false)
	}
	// a sunbeam
	x := uniform(r, 0.1, 0.9)
	c.paint(t, poly{{x, 0}, {x + 0.08, 0}, {x + 0.3, 1}, {x + 0.15, 1}}, hex(0xf0f0b0), 0.12, false)
}

func stage(c *canvas, t affine, r *rand.Rand) {
	c.vgradient(0, 1, hex(0x1a1026), hex(0x2e1a3c))
	sx := uniform(r, 0.4, 0.6)
	warm := oneOf(r, hex(0xfff4c8), hex(0xc8e0ff), hex(0xffd0f0))
	for i, rad := range []float32{0.42, 0.34, 0.26} {
		c.paint(t, ellipse{sx, 0.5, rad, rad * 1.1}, warm, 0.12+0.04*float32(i), false)
	}
	curtain := jit(r, oneOf(r, hex(0xb41c24), hex(0x8a1a6a), hex(0x1c3aa0)), 0.08)
	lw := uniform(r, 0.12, 0.22)
	rw := uniform(r, 0.12, 0.22)
	folds := func(x, y float32) bool { return int(math.Floor(float64(x/0.035)))%2 == 0 }
	c.paint(t, rect{0, 0, lw, 1}, curtain, 1, false)
	c.paint(t, rect{1 - rw, 0, 1, 1}, curtain, 1, false)
	c.paint(t, and{rect{0, 0, lw, 1}, fn{box{0, 0, 1, 1}, folds}}, curtain.scale(0.7), 1, false)
	c.paint(t, and{rect{1 - rw, 0, 1, 1}, fn{box{0, 0, 1, 1}, folds}}, curtain.scale(0.7), 1, false)
	val := uniform(r, 0.06, 0.1)
	c.paint(t, rect{0, 0, 1, val}, curtain.scale(0.9), 1, false)
	for x := float32(0.05); x < 1; x += 0.1 {
		c.paint(t, ellipse{x, val, 0.05, 0.03}, curtain.scale(0.9), 1, false)
	}
	floor := uniform(r, 0.8, 0.86)
	wood := jit(r, hex(0x7a4e2a), 0.1)
	c.paint(t, rect{0, floor, 1, 1}, wood, 1, false)
	for y := floor + 0.04; y < 1; y += 0.05 {
		c.paint(t, rect{0, y, 1, y + 0.006}, wood.scale(0.7), 1, false)
	}
}

func library(c *canvas, t affine, r *rand.Rand) {
	wood := jit(r, hex(0x5a3820), 0.1)
	c.vgradient(0, 1, wood, wood.scale(0.8))
	h := uniform(r, 0.18, 0.24)
	bookCols := []rgb{hex(0x9a2424), hex(0x246a3a), hex(0x24406e), hex(0x6e4a24), hex(0xc8a060), hex(0x2a2a2a), hex(0x7a2a5a), hex(0xd0c8b0)}
	for y := uniform(r, -0.1, 0); y < 1; y += h {
		for x := uniform(r, -0.03, 0); x < 1; {
			w := uniform(r, 0.018, 0.04)
			if r.IntN(12) == 0 {
				x += w // a gap
				continue
			}
			bh := h * uniform(r, 0.62, 0.86)
			col := jit(r, bookCols[r.IntN(len(bookCols))], 0.12)
			c.paint(t, rect{x, y + h - 0.025 - bh, x + w - 0.003, y + h - 0.025}, col, 1, false)
			c.paint(t, rect{x, y + h - 0.025 - bh*0.8, x + w - 0.003, y + h - 0.025 - bh*0.72}, col.mix(hex(0xe8d070), 0.5), 1, false)
			x += w
		}
		c.paint(t, rect{0, y + h - 0.025, 1, y + h}, wood.scale(1.35), 1, false)
	}
}
