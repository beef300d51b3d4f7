package synthfaces

// Human faces. Coordinates are head-local: the head outline spans y in
// [-1, 1] and x in [-w, w]; the body frame shares the origin and unit but not
// the head's tilt. Everything drawn here is subject.

var (
	eyeWhite = hex(0xf6f4ee)
	pupilCol = hex(0x141010)
	mouthIn  = hex(0x5a1620)
	teeth    = hex(0xf8f6f0)
	gold     = hex(0xe8c040)
	straw    = hex(0xe6d096)
)

// headUnit is the head half-height of an adult, in image heights.
const headUnit = 0.25

func drawHuman(c *canvas, id *Identity, v *variation) {
	p := &id.p
	unit := headUnit * p.headScale * v.scale
	hf := frame(c.n, v.cx, v.cy, unit, v.tilt)
	bf := frame(c.n, v.cx, v.cy, unit, 0)
	W := p.w
	yaw := v.yaw
	fx := yaw * 0.16 * W // shift of the inner features
	skin := p.skin
	shade := skin.scale(0.84)
	hair := p.hair
	hd := head{w: W, h: 1, sq: p.sq, taper: p.taper}
	style := p.hairStyle
	if v.hat != "none" && style == "bun" {
		style = "bob" // the bun is let down under the hat
	}

	// Body: shoulders in the shirt colour, neck and neckline.
	shoulderRX := float32(1.55) + 0.5*(1-p.fem)
	if p.child {
		shoulderRX *= 0.82
	}
	shoulders := ellipse{0, 2.5, shoulderRX, 1.15}
	neckW := 0.25 + 0.1*(1-p.fem)
	c.paint(bf, shoulders, v.shirtCol, 1, true)
	c.paint(bf, rect{-neckW, 0.3, neckW, 1.4}, shade, 1, true)
	c.paint(bf, and{ellipse{0, 1.36, neckW + 0.1, 0.22}, shoulders}, shade, 1, true)
	if p.hood {
		// The hood of a hoodie, behind the head: a ring in the shirt colour framing the
		// face, which makes "person" a class of its own rather than a man or woman.
		c.paint(hf, ellipse{0, 0.1, W + 0.46, 1.36}, v.shirtCol.scale(0.78), 1, true)
	}

	// Hair behind the head.
	switch style {
	case "long":
		c.paint(hf, unionOf(
			ellipse{0, -0.05, W + 0.2, 1.12},
			poly{{-W - 0.2, -0.05}, {W + 0.2, -0.05}, {W + 0.4, 1.75}, {-W - 0.4, 1.75}},
			ellipse{0, 1.75, W + 0.4, 0.22},
		), hair, 1, true)
	case "bob":
		c.paint(hf, unionOf(ellipse{0, -0.05, W + 0.2, 1.12}, roundRect{box{-W - 0.22, -0.1, W + 0.22, 0.85}, 0.18}), hair, 1, true)
	case "curly":
		c.paint(hf, ellipse{0, -0.12, W + 0.3, 1.18}, hair.scale(0.85), 1, true)
	case "bun":
		c.paint(hf, circle(0, -1.12, 0.36), hair, 1, true)
		c.paint(hf, circle(-0.08, -1.2, 0.12), hair.mix(white, 0.25), 0.5, true)
	}

	// Ears, unless covered by hair; the one on the side the face turns to
	// tucks behind the head.
	earY := p.eyeY + 0.14
	if style != "long" && style != "bob" {
		for _, s := range []float32{-1, 1} {
			ex := s * (W - 0.03)
			if s*yaw > 0 {
				ex -= s * yaw * 0.14
			}
			c.paint(hf, ellipse{ex, earY, 0.14, 0.21}, skin.scale(0.93), 1, true)
			c.paint(hf, ellipse{ex + s*0.03, earY, 0.06, 0.12}, shade.scale(0.9), 1, true)
		}
	}

	// Head, with a soft shadow on the side turned away.
	c.paint(hf, hd, skin, 1, true)
	if yaw < -0.1 || yaw > 0.1 {
		s := float32(1)
		if yaw > 0 {
			s = -1
		}
		c.paint(hf, and{hd, ellipse{s * (W + 0.55), 0.1, 0.8, 1.3}}, shade, 0.35*min(1, 2*abs(yaw)), true)
	}
	if p.fem > 0.6 || p.child {
		for _, s := range []float32{-1, 1} {
			c.paint(hf, ellipse{fx + s*0.46*W, p.eyeY + 0.33, 0.14, 0.08}, hex(0xf07080), 0.25, true)
		}
	}

	// Beard (under the mouth, over the skin).
	my, mw := p.mouthY, p.mouthW
	beardCol := hair.scale(0.85)
	jaw := head{w: W + 0.03, h: 1.04, sq: p.sq, taper: p.taper}
	lower := fn{box{-W - 0.1, -0.2, W + 0.1, 1.1}, func(x, y float32) bool {
		u := (x - fx*0.5) / W
		return y >= my-0.17-0.22*u*u
	}}
	moustache := curve{fx, my - 0.05, mw + 0.06, -0.05, 0.05, 0.5}
	switch p.beard {
	case "full":
		c.paint(hf, and{jaw, lower}, beardCol, 1, true)
	case "stubble":
		c.paint(hf, and{jaw, lower}, beardCol.mix(shade, 0.3), 0.4, true)
	case "goatee":
		c.paint(hf, unionOf(ellipse{fx, 0.82, 0.2, 0.2}, moustache), beardCol, 1, true)
	case "moustache":
		c.paint(hf, moustache, beardCol, 1, true)
	}

	// Eyes.
	es := p.eyeSize
	ed := 0.37 * W * p.eyeSpacing
	lash := hex(0x2a1c18)
	for _, s := range []float32{-1, 1} {
		ex, ey := fx+s*ed, p.eyeY
		k := 1 - s*yaw*0.15
		rx, ry := 0.15*es*k, 0.1*es
		switch v.expression {
		case "sleepy":
			c.paint(hf, curve{ex, ey, rx + 0.02, 0.045, 0.03, 0.5}, lash, 1, true)
			continue
		case "laughing":
			ry *= 0.55
		case "surprised":
			ry *= 1.25
		}
		out := 0.025 + 0.015*p.fem
		c.paint(hf, ellipse{ex, ey - 0.01*p.fem, rx + out, ry + out}, lash, 1, true)
		c.paint(hf, ellipse{ex, ey, rx, ry}, eyeWhite, 1, true)
		ix := ex + fx*0.35
		ir := min(0.8*rx, 1.05*ry)
		c.paint(hf, and{circle(ix, ey, ir), ellipse{ex, ey, rx, ry}}, p.eye, 1, true)
		c.paint(hf, circle(ix, ey, 0.45*ir), pupilCol, 1, true)
		c.paint(hf, circle(ix+0.3*ir, ey-0.3*ir, 0.22*ir), white, 1, true)
	}

	// Brows.
	by := p.eyeY - 0.21*es
	if v.expression == "surprised" {
		by -= 0.07
	}
	browCol := hair.scale(0.72)
	var th, bend float32
	switch p.brows {
	case "thin":
		th, bend = 0.024, -0.02
	case "thick":
		th, bend = 0.055, -0.015
	default: // arched
		th, bend = 0.034, -0.08
	}
	for _, s := range []float32{-1, 1} {
		c.paint(hf, curve{fx + s*ed*1.03, by, 0.18 * es, bend, th, 0.55}, browCol, 1, true)
	}

	// Nose.
	nx, ny := fx*1.5, p.eyeY+0.33
	if p.child {
		ny -= 0.05
	}
	var nose ellipse
	switch p.nose {
	case "small":
		nose = ellipse{nx, ny, 0.06, 0.08}
	case "wide":
		nose = ellipse{nx, ny + 0.02, 0.13, 0.08}
	default: // long
		nose = ellipse{nx, ny - 0.06, 0.055, 0.17}
	}
	c.paint(hf, nose, shade, 0.9, true)
	nb := nose.cy + nose.ry*0.6
	for _, s := range []float32{-1, 1} {
		c.paint(hf, circle(nx+s*nose.rx*0.55, nb, 0.028), skin.scale(0.55), 1, true)
	}

	// Mouth.
	switch v.expression {
	case "smiling":
		c.paint(hf, curve{fx, my - 0.04, mw * 1.05, 0.09, 0.035, 0.35}, p.lip.scale(0.85), 1, true)
	case "laughing":
		open := and{ellipse{fx, my - 0.05, mw, 0.22}, rect{-2, my - 0.05, 2, 2}}
		c.paint(hf, open, mouthIn, 1, true)
		c.paint(hf, and{open, rect{-2, -2, 2, my + 0.01}}, teeth, 1, true)
		c.paint(hf, and{open, ellipse{fx, my + 0.17, mw * 0.55, 0.08}}, hex(0xd05060), 1, true)
	case "surprised":
		c.paint(hf, ellipse{fx, my + 0.02, 0.08, 0.11}, p.lip, 1, true)
		c.paint(hf, ellipse{fx, my + 0.02, 0.05, 0.075}, mouthIn, 1, true)
	default: // neutral, sleepy
		c.paint(hf, curve{fx, my, mw, 0.015, 0.03 + 0.01*p.fem, 0.45}, p.lip, 1, true)
	}

	// Hair in front.
	capE := ellipse{0, -0.07, W + 0.07, 1.03}
	hairline := func(base, side, part float32) shape {
		return fn{box{-W - 0.4, -1.5, W + 0.4, 1}, func(x, y float32) bool {
			u := (x - fx*0.4) / W
			return y <= base+side*u*u+part*u
		}}
	}
	var front shape
	switch style {
	case "short":
		front = and{capE, hairline(-0.55, 0.45, 0.1*p.parting)}
	case "spiky":
		sp := unionOf(and{capE, hairline(-0.52, 0.4, 0)})
		for i := range 7 {
			a := -0.9 + 0.3*float32(i) // angle offset from straight up, radians-ish
			bx, byy := (W+0.02)*sin32(a), -1.02*cos32(a)-0.05
			tx, ty := (W+0.3)*sin32(a*1.1), -1.32*cos32(a)-0.05
			px, py := 0.18*cos32(a), 0.18*sin32(a)
			sp = sp.add(poly{{bx - px, byy - py + 0.1}, {tx, ty}, {bx + px, byy + py + 0.1}})
		}
		front = sp
	case "curly":
		cu := unionOf(and{ellipse{0, -0.1, W + 0.17, 1.12}, hairline(-0.45, 0.5, 0)})
		for i := range 9 {
			a := -1.35 + 0.3375*float32(i)
			cu = cu.add(circle((W+0.14)*sin32(a), -0.1-1.1*cos32(a), 0.2))
		}
		front = cu
	case "bob":
		front = unionOf(
			and{ellipse{0, -0.07, W + 0.12, 1.06}, hairline(-0.36, 0.05, 0)},
			and{roundRect{box{-W - 0.22, -0.6, -W + 0.14, 0.85}, 0.12}, ellipse{0, 0.1, W + 0.22, 1.3}},
			and{roundRect{box{W - 0.14, -0.6, W + 0.22, 0.85}, 0.12}, ellipse{0, 0.1, W + 0.22, 1.3}},
		)
	case "long":
		front = unionOf(
			and{capE, hairline(-0.52, 0.3, 0.3*p.parting)},
			newRotEllipse(-W-0.05, 0.6, 0.11, 1.0, 0.1),
			newRotEllipse(W+0.05, 0.6, 0.11, 1.0, -0.1),
		)
	case "bun":
		front = and{capE, hairline(-0.58, 0.35, 0)}
	case "bald":
		front = and{ellipse{0, -0.05, W + 0.06, 1.03}, fn{box{-W - 0.1, -0.5, W + 0.1, 0.4}, func(x, y float32) bool {
			return (x > W*0.7 || x < -W*0.7) && y > -0.42 && y < earY+0.08
		}}}
	}
	if front != nil {
		c.paint(hf, front, hair, 1, true)
		if style == "curly" {
			for i := range 7 {
				a := -1.1 + 0.37*float32(i)
				c.paint(hf, circle((W-0.05)*sin32(a)*0.8, -0.55-0.4*cos32(a), 0.09), hair.scale(0.75), 0.7, true)
			}
		}
		if style != "bald" {
			c.paint(hf, and{front, ellipse{-0.25 + fx*0.3, -0.82, 0.35, 0.12}}, hair.mix(white, 0.35), 0.35, true)
		}
	}

	// Earrings.
	if v.earrings == "hoops" {
		for _, s := range []float32{-1, 1} {
			ex := s * (W - 0.03)
			if s*yaw > 0 {
				ex -= s * yaw * 0.14
			}
			c.paint(hf, ring{circle(ex, earY+0.28, 0.09), 0.035}, gold, 1, true)
		}
	}

	// Glasses.
	if v.glasses != "none" {
		fc := v.frameCol
		for _, s := range []float32{-1, 1} {
			ex, ey := fx+s*ed, p.eyeY
			k := 1 - s*yaw*0.15
			lens := ellipse{ex, ey, 0.21 * es * k, 0.16 * es}
			if v.glasses == "sunglasses" {
				c.paint(hf, lens, hex(0x141418), 1, true)
				c.paint(hf, capsule{ex - 0.08, ey - 0.04, ex - 0.02, ey - 0.09, 0.02}, white, 0.45, true)
			}
			c.paint(hf, ring{lens, 0.04}, fc, 1, true)
			c.paint(hf, capsule{ex + s*lens.rx, ey - 0.02, s * (W - 0.02), ey - 0.05, 0.022}, fc, 1, true)
		}
		c.paint(hf, curve{fx, p.eyeY - 0.03, ed - 0.18*es, -0.03, 0.022, 0}, fc, 1, true)
	}

	// Hat.
	hc := v.hatCol
	switch v.hat {
	case "cap":
		c.paint(hf, and{ellipse{0, -0.44, W + 0.1, 0.74}, rect{-3, -3, 3, -0.4}}, hc, 1, true)
		c.paint(hf, ellipse{fx * 0.8, -0.42, W + 0.1, 0.13}, hc.scale(0.72), 1, true)
		c.paint(hf, circle(0, -1.15, 0.06), hc.scale(0.8), 1, true)
	case "beanie":
		c.paint(hf, and{ellipse{0, -0.36, W + 0.12, 0.82}, rect{-3, -3, 3, -0.3}}, hc, 1, true)
		c.paint(hf, and{ellipse{0, -0.36, W + 0.15, 0.84}, rect{-3, -0.56, 3, -0.3}}, hc.scale(0.78), 1, true)
		c.paint(hf, circle(0, -1.2, 0.16), hc.mix(white, 0.5), 1, true)
	case "sunhat":
		c.paint(hf, ellipse{0, -0.52, W + 0.7, 0.2}, straw, 1, true)
		c.paint(hf, and{ellipse{0, -0.58, W * 0.85, 0.58}, rect{-3, -3, 3, -0.5}}, straw.scale(0.95), 1, true)
		c.paint(hf, and{ellipse{0, -0.58, W * 0.86, 0.58}, rect{-3, -0.72, 3, -0.56}}, hc, 1, true)
	}
}
