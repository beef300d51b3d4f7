package synthfaces

import (
	"fmt"
	"image"
	"math/rand/v2"
	"slices"
	"testing"
)

var allClasses = append(slices.Clone(HumanClasses), PetClasses...)

// captured renders one image and also returns its variation.
func captured(t testing.TB, w *World, id, idx int) (Sample, variation) {
	t.Helper()
	var v variation
	s, err := w.render(id, idx, func(x *variation) { v = *x })
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func maskCount(m *image.Gray) int {
	n := 0
	for _, p := range m.Pix {
		if p == 255 {
			n++
		} else if p != 0 {
			return -1
		}
	}
	return n
}

func TestEveryClassRendersWithGoodMasks(t *testing.T) {
	for _, size := range []int{32, 64, 128} {
		n := 3
		if size == 128 {
			n = 1 // keep the test fast
		}
		w := mustWorld(t, Config{Seed: 11, Identities: len(allClasses) * n, ImagesPerIdentity: 2, Size: size, Classes: allClasses})
		for id := range len(allClasses) * n {
			for idx := range 2 {
				s, v := captured(t, w, id, idx)
				name := fmt.Sprintf("size %d %s (%s)", size, s.ID, s.Class)
				if b := s.Image.Bounds(); b.Dx() != size || b.Dy() != size || s.Mask.Bounds() != b {
					t.Fatalf("%s: image %v mask %v, want %dx%d", name, b, s.Mask.Bounds(), size, size)
				}
				for i := 3; i < len(s.Image.Pix); i += 4 {
					if s.Image.Pix[i] != 255 {
						t.Fatalf("%s: pixel %d not opaque", name, i/4)
					}
				}
				cnt := maskCount(s.Mask)
				if cnt < 0 {
					t.Fatalf("%s: mask has values other than 0 and 255", name)
				}
				frac := float64(cnt) / float64(size*size)
				if frac < 0.15 || frac > 0.8 {
					t.Errorf("%s: mask covers %.2f of the image, want 0.15..0.8", name, frac)
				}
				// The head centre is subject; the top corners are background.
				cx, cy := int(v.cx*float32(size)), int(v.cy*float32(size))
				if s.Mask.GrayAt(cx, cy).Y != 255 {
					t.Errorf("%s: mask misses the face centre (%d,%d)", name, cx, cy)
				}
				if s.Mask.GrayAt(0, 0).Y != 0 || s.Mask.GrayAt(size-1, 0).Y != 0 {
					t.Errorf("%s: mask covers a top corner", name)
				}
				// The subject's top (hair, ears or hat) starts in the upper third, a
				// child's lower (it is drawn smaller and lower; see childDrop).
				maxTop := 0.33
				if w.ids[id].p.child {
					maxTop = 0.4
				}
				top := -1
				for y := 0; y < size && top < 0; y++ {
					for x := range size {
						if s.Mask.GrayAt(x, y).Y == 255 {
							top = y
							break
						}
					}
				}
				if f := float64(top) / float64(size); f < 0 || f > maxTop {
					t.Errorf("%s: subject starts at %.2f of the height, want <= %.2f", name, f, maxTop)
				}
			}
		}
	}
}

// subjectDistance is the mean absolute RGB difference (0..255) over the union
// of the two subject masks.
func subjectDistance(a, b Sample) float64 {
	sum, n := 0.0, 0
	for i := range a.Mask.Pix {
		if a.Mask.Pix[i] == 0 && b.Mask.Pix[i] == 0 {
			continue
		}
		for c := range 3 {
			d := int(a.Image.Pix[4*i+c]) - int(b.Image.Pix[4*i+c])
			sum += float64(max(d, -d))
		}
		n++
	}
	return sum / float64(3*max(n, 1))
}

func TestIdentityIsStrongerThanImageVariation(t *testing.T) {
	for _, classes := range [][]string{HumanClasses, PetClasses} {
		const ids, imgs = 10, 5
		w := mustWorld(t, Config{Seed: 3, Identities: ids, ImagesPerIdentity: imgs, Classes: classes})
		// Pin pose and scene; expression, lighting and accessories still vary.
		pin := func(id int) func(*variation) {
			p := &w.ids[id].p
			return func(v *variation) {
				v.scene, v.cx, v.cy, v.scale, v.tilt, v.yaw = "office", 0.5, 0.44, 1, 0, 0
				if p.child {
					v.cy += childDrop
				}
				if isPet(w.ids[id].Class) {
					v.cy += 0.03
				}
			}
		}
		img := make([][]Sample, ids)
		for id := range ids {
			for idx := range imgs {
				s, err := w.render(id, idx, pin(id))
				if err != nil {
					t.Fatal(err)
				}
				img[id] = append(img[id], s)
			}
		}
		var same, diff float64
		var ns, nd int
		for a := range ids {
			for i := range imgs {
				for j := i + 1; j < imgs; j++ {
					same += subjectDistance(img[a][i], img[a][j])
					ns++
				}
				for b := a + 1; b < ids; b++ {
					diff += subjectDistance(img[a][i], img[b][i])
					nd++
				}
			}
		}
		same /= float64(ns)
		diff /= float64(nd)
		t.Logf("%v: mean subject distance, same identity %.1f, different identities %.1f", classes, same, diff)
		if diff < 1.3*same {
			t.Errorf("%v: different identities differ by %.1f, same identity by %.1f: want at least 1.3x", classes, diff, same)
		}
	}
	// Unpinned renders of one identity differ.
	w := mustWorld(t, Config{Seed: 3, Identities: 5, ImagesPerIdentity: 2})
	for id := range 5 {
		a, va := captured(t, w, id, 0)
		b, vb := captured(t, w, id, 1)
		if va.cx == vb.cx && va.yaw == vb.yaw {
			t.Errorf("identity %d: images 0 and 1 share a pose", id)
		}
		if d := subjectDistance(a, b); d < 5 {
			t.Errorf("identity %d: images 0 and 1 differ by only %.1f", id, d)
		}
	}
}

func BenchmarkRender(b *testing.B) {
	for _, bc := range []struct {
		size    int
		classes []string
	}{{32, HumanClasses}, {32, PetClasses}, {64, HumanClasses}} {
		b.Run(fmt.Sprintf("%s/%dpx", bc.classes[0], bc.size), func(b *testing.B) {
			w := mustWorld(b, Config{Seed: 1, Identities: 100, ImagesPerIdentity: 10, Size: bc.size, Classes: bc.classes})
			i := 0
			for b.Loop() {
				if _, err := w.At(i % w.Len()); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

// TestScenesCoverCanvas checks that every scene paints every sub-pixel, so no
// earlier render can show through a pooled canvas.
func TestScenesCoverCanvas(t *testing.T) {
	for _, scene := range Scenes {
		for seed := range uint64(6) {
			c := &canvas{n: 32 * superSample}
			c.pix = make([]float32, 3*c.n*c.n)
			c.subj = make([]bool, c.n*c.n)
			for i := range c.pix {
				c.pix[i] = -1
			}
			drawScene(c, scene, rand.New(rand.NewPCG(seed, 1)))
			for i, v := range c.pix {
				if v < 0 {
					t.Errorf("scene %s seed %d: sub-pixel %d not painted", scene, seed, i/3)
					break
				}
			}
			if slices.Contains(c.subj, true) {
				t.Errorf("scene %s seed %d: background marked as subject", scene, seed)
			}
		}
	}
}
