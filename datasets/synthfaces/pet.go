package synthfaces

// Animal faces (cat, dog), in the same head-local coordinates as humans: the
// head outline spans y in [-h, h] and x in [-w, w]. Everything is subject.

// petUnit is the pet head frame's unit, in image heights.
const petUnit = 0.27

func drawPet(c *canvas, id *Identity, v *variation) {
	p := &id.p
	cat := id.Class == "cat"
	unit := petUnit * p.headScale * v.scale
	hf := frame(c.n, v.cx, v.cy, unit, v.tilt)
	bf := frame(c.n, v.cx, v.cy, unit, 0)
	W, H := p.w, p.h
	fx := v.yaw * 0.16 * W
	fur, fur2 := p.fur, p.fur2
	dark := hex(0x1c1616)
	hd := head{w: W, h: H, taper: p.taper}

	// Body, its pattern, chest bib and collar.
	body := ellipse{0, 2.15, 1.3, 1.15}
	if !cat {
		body.rx = 1.2
	}
	c.paint(bf, body, fur, 1, true)
	switch p.pattern {
	case "spotted":
		for _, s := range p.bodySpots {
			c.paint(bf, and{s, body}, fur2, 1, true)
		}
	case "striped":
		c.paint(bf, and{body, fn{body.bounds(), func(x, y float32) bool {
			return int((y+10)/0.22)%2 == 0 && (x > 0.35 || x < -0.35)
		}}}, fur2, 1, true)
	case "patched":
		c.paint(bf, and{body, ellipse{-p.patchSide * 0.7, 2.0, 0.6, 0.7}}, fur2, 1, true)
	}
	if p.bib {
		c.paint(bf, and{ellipse{0, 1.5, 0.42, 0.55}, body}, p.muzzle, 1, true)
	}
	if v.collar != "none" {
		c.paint(bf, curve{0, H + 0.05, 0.62, 0.12, 0.08, 0.1}, v.collarCol, 1, true)
		c.paint(bf, circle(0, H+0.26, 0.09), gold, 1, true)
	}

	// Ears behind the head.
	earIn := hex(0xf0a0b0)
	for _, s := range []float32{-1, 1} {
		switch p.ears {
		case "pointy":
			if cat {
				c.paint(hf, poly{{s * 0.22 * W, -0.62 * H}, {s * 0.78 * W, -1.42 * H}, {s * 0.98 * W, -0.3 * H}}, fur, 1, true)
				c.paint(hf, poly{{s * 0.4 * W, -0.66 * H}, {s * 0.76 * W, -1.22 * H}, {s * 0.86 * W, -0.5 * H}}, earIn, 1, true)
			} else {
				c.paint(hf, poly{{s * 0.2 * W, -0.7 * H}, {s * 0.7 * W, -1.55 * H}, {s * 0.92 * W, -0.45 * H}}, fur2.mix(fur, 0.5), 1, true)
				c.paint(hf, poly{{s * 0.38 * W, -0.72 * H}, {s * 0.68 * W, -1.35 * H}, {s * 0.8 * W, -0.58 * H}}, fur.scale(0.7).mix(earIn, 0.3), 1, true)
			}
		case "round":
			c.paint(hf, circle(s*0.7*W, -0.78*H, 0.3), fur.scale(0.9), 1, true)
			c.paint(hf, circle(s*0.7*W, -0.78*H, 0.16), earIn.mix(fur, 0.4), 1, true)
		}
	}

	// Head, cheek fluff for cats, shadow on the side turned away.
	if cat {
		c.paint(hf, unionOf(hd, ellipse{0, 0.25 * H, W * 1.06, 0.55 * H}), fur, 1, true)
	} else {
		c.paint(hf, hd, fur, 1, true)
	}
	clip := shape(hd)
	switch p.pattern {
	case "spotted":
		for _, s := range p.spots {
			c.paint(hf, and{s, clip}, fur2, 1, true)
		}
	case "striped":
		for _, k := range []float32{-1, 0, 1} {
			c.paint(hf, and{capsule{fx + k*0.24, -0.95 * H, fx + k*0.16, -0.5 * H, 0.06}, clip}, fur2, 1, true)
		}
		for _, s := range []float32{-1, 1} {
			for j := range 2 {
				y := 0.02 + 0.18*float32(j)
				c.paint(hf, and{capsule{s * W, y, s * (W - 0.35), y + 0.05, 0.05}, clip}, fur2, 1, true)
			}
		}
	case "patched":
		c.paint(hf, and{newRotEllipse(p.patchSide*0.45*W+fx, -0.25*H, 0.42, 0.5, 0.4*p.patchSide), clip}, fur2, 1, true)
	}
	if v.yaw < -0.1 || v.yaw > 0.1 {
		s := float32(1)
		if v.yaw > 0 {
			s = -1
		}
		c.paint(hf, and{hd, ellipse{s * (W + 0.6), 0.1, 0.85, 1.3}}, fur.scale(0.7), 0.3*min(1, 2*abs(v.yaw)), true)
	}

	// Muzzle.
	var ny float32 // nose centre
	switch {
	case cat && p.snout == "flat":
		c.paint(hf, ellipse{fx, 0.32 * H, 0.3, 0.2}, p.muzzle, 1, true)
		ny = 0.2 * H
	case cat:
		for _, s := range []float32{-1, 1} {
			c.paint(hf, ellipse{fx + s*0.15, 0.4 * H, 0.21, 0.16}, p.muzzle, 1, true)
		}
		ny = 0.25 * H
	case p.snout == "long":
		c.paint(hf, ellipse{fx * 1.2, 0.5 * H, 0.38, 0.5}, p.muzzle, 1, true)
		ny = 0.24 * H
	case p.snout == "short":
		c.paint(hf, ellipse{fx * 1.1, 0.45 * H, 0.36, 0.32}, p.muzzle, 1, true)
		ny = 0.28 * H
	default: // flat dog
		c.paint(hf, ellipse{fx, 0.38 * H, 0.36, 0.24}, p.muzzle, 1, true)
		ny = 0.25 * H
	}

	// Eyes.
	es := p.eyeSize
	ed := 0.4 * W * p.eyeSpacing
	if !cat {
		ed = 0.36 * W * p.eyeSpacing
	}
	ey := p.eyeY * H
	for _, s := range []float32{-1, 1} {
		ex := fx + s*ed
		k := 1 - s*v.yaw*0.15
		switch v.expression {
		case "sleepy":
			c.paint(hf, curve{ex, ey, 0.15 * es, 0.05, 0.03, 0.5}, dark, 1, true)
			continue
		case "happy":
			if cat {
				c.paint(hf, curve{ex, ey + 0.03, 0.14 * es, -0.07, 0.03, 0.4}, dark, 1, true)
				continue
			}
		}
		if cat {
			rx, ry := 0.17*es*k, 0.145*es
			c.paint(hf, ellipse{ex, ey, rx + 0.03, ry + 0.03}, dark, 1, true)
			c.paint(hf, ellipse{ex, ey, rx, ry}, p.eye, 1, true)
			c.paint(hf, ellipse{ex + fx*0.3, ey, 0.04, ry * 0.85}, dark, 1, true)
			c.paint(hf, circle(ex+fx*0.3+0.06, ey-0.05, 0.03), white, 1, true)
		} else {
			rr := 0.12 * es
			c.paint(hf, ellipse{ex, ey, (rr + 0.03) * k, rr + 0.03}, dark, 1, true)
			c.paint(hf, ellipse{ex, ey, rr * k, rr}, p.eye, 1, true)
			c.paint(hf, circle(ex+fx*0.3, ey, rr*0.55), dark, 1, true)
			c.paint(hf, circle(ex+fx*0.3+0.04, ey-0.04, 0.03), white, 1, true)
		}
	}

	// Nose, mouth, whiskers.
	nx := fx * 1.35
	mouthCol := dark
	if fur.r+fur.g+fur.b < 0.6 {
		mouthCol = hex(0x5a4a48)
	}
	if cat {
		c.paint(hf, poly{{nx - 0.09, ny - 0.045}, {nx + 0.09, ny - 0.045}, {nx, ny + 0.06}}, p.noseCol, 1, true)
		c.paint(hf, capsule{nx, ny + 0.04, nx, ny + 0.11, 0.018}, mouthCol, 1, true)
		if v.expression == "happy" {
			c.paint(hf, ellipse{nx, ny + 0.16, 0.07, 0.06}, hex(0x8a2a38), 1, true)
		}
		for _, s := range []float32{-1, 1} {
			c.paint(hf, curve{nx + s*0.07, ny + 0.11, 0.07, 0.035, 0.018, 0.3}, mouthCol, 1, true)
		}
		whisker := hex(0xf4f4f0)
		if fur.r+fur.g+fur.b > 2.2 {
			whisker = hex(0x6a6a6a)
		}
		for _, s := range []float32{-1, 1} {
			for j := range 3 {
				y := ny + 0.06 + 0.05*float32(j)
				c.paint(hf, capsule{nx + s*0.22, y, nx + s*0.85, y - 0.06 + 0.07*float32(j), 0.02}, whisker, 0.9, true)
			}
		}
	} else {
		c.paint(hf, ellipse{nx, ny, 0.15, 0.1}, p.noseCol, 1, true)
		c.paint(hf, ellipse{nx - 0.04, ny - 0.04, 0.05, 0.025}, white, 0.5, true)
		my := ny + 0.2
		if p.snout == "long" {
			my = ny + 0.3
		}
		c.paint(hf, capsule{nx, ny + 0.08, nx, my, 0.018}, mouthCol, 1, true)
		if v.expression == "happy" {
			open := and{ellipse{nx, my, 0.22, 0.16}, rect{-3, my, 3, 3}}
			c.paint(hf, open, hex(0x5a1a22), 1, true)
			c.paint(hf, ellipse{nx, my + 0.16, 0.09, 0.14}, hex(0xe87080), 1, true)
		} else {
			c.paint(hf, curve{nx, my - 0.02, 0.18, 0.04, 0.02, 0.3}, mouthCol, 1, true)
		}
	}

	// Floppy and folded ears lie over the head.
	for _, s := range []float32{-1, 1} {
		switch p.ears {
		case "floppy":
			earCol := fur.scale(0.78)
			if p.pattern == "patched" || p.pattern == "spotted" {
				earCol = fur2
			}
			c.paint(hf, newRotEllipse(s*(W-0.04), -0.12*H, 0.22, 0.56, -s*0.28), earCol, 1, true)
		case "folded":
			c.paint(hf, newRotEllipse(s*0.5*W, -0.78*H, 0.26, 0.15, s*0.45), fur.scale(0.85), 1, true)
		}
	}
}
