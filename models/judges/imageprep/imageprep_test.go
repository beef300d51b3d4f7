package imageprep

import (
	"image"
	"image/color"
	"math"
	"path/filepath"
	"testing"

	"github.com/cocoflow/cocoflow/datasets/imageio"
)

// load reads a testdata PNG written by tools/clip_fixtures.py.
func load(t testing.TB, name string) RGB {
	t.Helper()
	img, err := imageio.DecodeFile(filepath.Join("testdata", name), "run /usr/bin/python3 tools/clip_fixtures.py")
	if err != nil {
		t.Fatal(err)
	}
	return FromImage(img)
}

// equalPixels fails unless got and want are the same image; it reports the worst channel.
func equalPixels(t *testing.T, what string, got, want RGB) {
	t.Helper()
	if got.W != want.W || got.H != want.H {
		t.Fatalf("%s: %dx%d, want %dx%d", what, got.W, got.H, want.W, want.H)
	}
	worst, at, diff := 0, 0, 0
	for i := range got.Pix {
		d := int(got.Pix[i]) - int(want.Pix[i])
		if d < 0 {
			d = -d
		}
		if d > 0 {
			diff++
		}
		if d > worst {
			worst, at = d, i
		}
	}
	if worst > 0 {
		p := at / 3
		t.Fatalf("%s: %d of %d channel values differ, worst by %d at (%d,%d) channel %d",
			what, diff, len(got.Pix), worst, p%got.W, p/got.W, at%3)
	}
}

// TestCLIPMatchesReferencePixels: OpenAI's Resize(224, BICUBIC) + CenterCrop(224) of an image
// that is upsampled (62x47, with an odd crop margin) and one that is downsampled (320x400),
// against the uint8 pixels of the PIL-exact reference in tools/clip_fixtures.py.
func TestCLIPMatchesReferencePixels(t *testing.T) {
	for _, name := range []string{"wide", "tall"} {
		got, err := CLIP(load(t, name+".png"), 224)
		if err != nil {
			t.Fatal(err)
		}
		equalPixels(t, "CLIP("+name+")", got, load(t, "clip-"+name+".png"))
	}
}

// TestSquareMatchesReferencePixels: DreamSim's Resize((224, 224), BICUBIC).
func TestSquareMatchesReferencePixels(t *testing.T) {
	for _, name := range []string{"wide", "tall"} {
		got, err := Square(load(t, name+".png"), 224)
		if err != nil {
			t.Fatal(err)
		}
		equalPixels(t, "Square("+name+")", got, load(t, "square-"+name+".png"))
	}
}

// TestCLIPCropOffsets: 62x47 resizes to 295x224 (int(224·62/47) = 295); the margin 71 gives
// round(35.5) = 36 with round-half-to-even (a floor would give 35). A 224-pixel-wide column
// pattern makes the offset visible.
func TestCLIPCropOffsets(t *testing.T) {
	src := RGB{W: 295, H: 224, Pix: make([]uint8, 3*295*224)}
	for y := range src.H {
		for x := range src.W {
			src.Pix[3*(y*src.W+x)] = uint8(x)
		}
	}
	got, err := CLIP(src, 224)
	if err != nil {
		t.Fatal(err)
	}
	if r, _, _ := got.At(0, 0); r != 36 {
		t.Errorf("crop starts at column %d, want 36", r)
	}
	tall := RGB{W: 224, H: 227, Pix: make([]uint8, 3*224*227)}
	for y := range tall.H {
		tall.Pix[3*y*tall.W] = uint8(y)
	}
	got, err = CLIP(tall, 224)
	if err != nil {
		t.Fatal(err)
	}
	if r, _, _ := got.At(0, 0); r != 2 { // round(1.5) = 2
		t.Errorf("crop starts at row %d, want 2", r)
	}
}

// TestResizeKeepsFlatImages: any resize of a flat image is flat (the weights sum to one).
func TestResizeKeepsFlatImages(t *testing.T) {
	src := RGB{W: 37, H: 53, Pix: make([]uint8, 3*37*53)}
	for i := range src.Pix {
		src.Pix[i] = []uint8{200, 17, 99}[i%3]
	}
	for _, sz := range [][2]int{{224, 224}, {5, 7}, {37, 100}, {80, 53}} {
		got := Resize(src, sz[0], sz[1])
		for i, v := range got.Pix {
			if want := []uint8{200, 17, 99}[i%3]; v != want {
				t.Fatalf("resize to %v: value %d at %d, want %d", sz, v, i, want)
			}
		}
	}
}

func TestTensorNormalises(t *testing.T) {
	m := RGB{W: 2, H: 1, Pix: []uint8{255, 0, 128, 10, 20, 30}}
	got, err := Tensor([]RGB{m}, &CLIPMean, &CLIPStd)
	if err != nil {
		t.Fatal(err)
	}
	// NCHW: channel 0 is (255, 10), channel 1 (0, 20), channel 2 (128, 30).
	px := []float64{255, 10, 0, 20, 128, 30}
	for i, v := range got {
		c := i / 2
		want := (px[i]/255 - float64(CLIPMean[c])) / float64(CLIPStd[c])
		if math.Abs(float64(v)-want) > 1e-6 {
			t.Errorf("value %d = %v, want %v", i, v, want)
		}
	}
	raw, err := Tensor([]RGB{m}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if raw[0] != 1 || raw[1] != float32(10)/255 {
		t.Errorf("ToTensor = %v, want v/255", raw[:2])
	}
	if _, err := Tensor([]RGB{m, {W: 1, H: 1, Pix: []uint8{0, 0, 0}}}, nil, nil); err == nil {
		t.Error("images of different sizes: no error")
	}
}

func TestFromImageDropsAlphaAndKeepsColour(t *testing.T) {
	img := image.NewNRGBA(image.Rect(3, 4, 5, 5))
	img.SetNRGBA(3, 4, color.NRGBA{R: 200, G: 100, B: 50, A: 128})
	img.SetNRGBA(4, 4, color.NRGBA{R: 1, G: 2, B: 3, A: 255})
	got := FromImage(img)
	if got.W != 2 || got.H != 1 || string(got.Pix) != string([]uint8{200, 100, 50, 1, 2, 3}) {
		t.Errorf("FromImage = %+v", got)
	}
	gray := image.NewGray(image.Rect(0, 0, 1, 1))
	gray.Pix[0] = 77
	if got := FromImage(gray); string(got.Pix) != string([]uint8{77, 77, 77}) {
		t.Errorf("FromImage(gray) = %v", got.Pix)
	}
}

func TestEmptyImageIsAnError(t *testing.T) {
	if _, err := CLIP(RGB{}, 224); err == nil {
		t.Error("CLIP of an empty image: no error")
	}
	if _, err := Square(RGB{}, 224); err == nil {
		t.Error("Square of an empty image: no error")
	}
}

// TestBatchKeepsOrderAndNamesTheBadImage: Batch's results are in input order whatever the
// goroutines' order, and an empty image is reported by its index.
func TestBatchKeepsOrderAndNamesTheBadImage(t *testing.T) {
	var imgs []image.Image
	for i := range 9 {
		img := image.NewNRGBA(image.Rect(0, 0, 5+i, 3))
		imgs = append(imgs, img)
	}
	got, err := Batch(imgs, func(p RGB) (RGB, error) { return Square(p, 4) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Batch(imgs[:1], func(p RGB) (RGB, error) { return CLIP(p, 4) }); err != nil {
		t.Fatal(err)
	}
	for i, g := range got {
		if g.W != 4 || g.H != 4 {
			t.Fatalf("image %d: %dx%d", i, g.W, g.H)
		}
	}
	ids, err := Batch(imgs, func(p RGB) (RGB, error) { return RGB{W: p.W}, nil })
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range ids {
		if g.W != 5+i {
			t.Fatalf("result %d came from an image of width %d, want %d", i, g.W, 5+i)
		}
	}
	bad := append(imgs[:2:2], image.NewNRGBA(image.Rect(0, 0, 0, 0)))
	if _, err := Batch(bad, func(p RGB) (RGB, error) { return CLIP(p, 224) }); err == nil || err.Error() != "image 2: empty image (0x0)" {
		t.Errorf("empty image: err = %v", err)
	}
}
