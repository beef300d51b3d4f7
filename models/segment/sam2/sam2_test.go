package sam2

import (
	"image"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoflow/cocoflow/models/runtime/ort"
	"github.com/cocoflow/cocoflow/models/segment"
)

func testImage(w, h int) image.Image {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.NRGBA{uint8(4 * x), uint8(5 * y), 128, 255})
		}
	}
	return img
}

// The fixture decoder's masks are the prompt box (shrunk by at most 16 of the 1024 square's
// pixels) plus a term of at most 0.01: at image size the mask is the box, so the box must have
// reached the decoder as points labelled 2 and 3 in the square's pixels, and the mask must have
// come back to the image's size.
func TestMaskFollowsBox(t *testing.T) {
	for _, folder := range []string{"sam2", "sam2-orig-size"} {
		t.Run(folder, func(t *testing.T) {
			p, err := Open(filepath.Join("..", "testdata", folder), ort.Options{IntraOpThreads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			const W, H = 64, 48
			box := segment.Box{X0: 10, Y0: 8, X1: 40, Y1: 30}
			m, iou, err := p.Mask(testImage(W, H), box)
			if err != nil {
				t.Fatal(err)
			}
			if b := m.Bounds(); b.Dx() != W || b.Dy() != H || iou <= 0 || iou >= 1 {
				t.Fatalf("mask %v, iou %g", b, iou)
			}
			for y := 0; y < H; y++ {
				for x := 0; x < W; x++ {
					cx, cy := float64(x)+0.5, float64(y)+0.5
					in := cx > box.X0+2 && cx < box.X1-2 && cy > box.Y0+2 && cy < box.Y1-2
					out := cx < box.X0-2 || cx > box.X1+2 || cy < box.Y0-2 || cy > box.Y1+2
					if v := m.GrayAt(x, y).Y; in && v != 255 || out && v != 0 {
						t.Fatalf("pixel (%d,%d) = %d, box %+v", x, y, v, box)
					}
				}
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	_, err := Open("../testdata/sam2-other-names", ort.Options{})
	for _, want := range []string{"sam_vit_b.decoder.onnx", "expected inputs image_embed, high_res_feats_0", "orig_im_size (optional)",
		"found inputs image_embeddings, point_coords, point_labels, mask_input, has_mask_input, orig_im_size"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("SAM 1 decoder: err = %v, want it to contain %q", err, want)
		}
	}
	// The decoder given as the encoder.
	dec := "../testdata/sam2/sam2_hiera_tiny.decoder.onnx"
	if _, err := Open(dec+","+dec, ort.Options{}); err == nil || !strings.Contains(err.Error(), "sam 2 encoder "+dec+": expected inputs image") {
		t.Errorf("decoder as encoder: err = %v", err)
	}
	dir := t.TempDir()
	data, err := os.ReadFile("../testdata/sam2/sam2_hiera_tiny.encoder.onnx")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "x.encoder.onnx"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, ort.Options{}); err == nil || !strings.Contains(err.Error(), "*decoder*.onnx") {
		t.Errorf("no decoder: err = %v", err)
	}
	if _, err := Open(filepath.Join(dir, "x.encoder.onnx"), ort.Options{}); err == nil || !strings.Contains(err.Error(), "want a folder") {
		t.Errorf("one file: err = %v", err)
	}
	if _, err := Open(filepath.Join(dir, "nope"), ort.Options{}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing: err = %v", err)
	}
}
