package tinyjudge

import (
	"image"
	"image/color"
	"slices"
	"strings"
	"testing"

	"github.com/cocoflow/cocoflow/models/judges"
	"github.com/cocoflow/cocoflow/models/judges/tinyclip"
	"github.com/cocoflow/cocoflow/models/judges/tinyface"
)

// portraits are two distinct 32x32 test images, the second with a bright border that
// SubjectRegion paints over.
func portraits() []image.Image {
	var out []image.Image
	for k := range 2 {
		img := image.NewRGBA(image.Rect(0, 0, 32, 32))
		for y := range 32 {
			for x := range 32 {
				c := color.RGBA{uint8(8 * x), uint8(8 * y), uint8(60 * k), 255}
				if k == 1 && (x < 4 || x >= 28 || y < 4) {
					c = color.RGBA{255, 255, 0, 255}
				}
				img.Set(x, y, c)
			}
		}
		out = append(out, img)
	}
	return out
}

// TestTinyJudgesAreTheTinyModels: each registered kind gives exactly what its model gives,
// the subject kind on SubjectRegion's image.
func TestTinyJudgesAreTheTinyModels(t *testing.T) {
	imgs := portraits()
	fm, err := tinyface.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	cm, err := tinyclip.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}

	fj, err := judges.Faces.Open(judges.Spec{Kind: FaceKind})
	if err != nil {
		t.Fatal(err)
	}
	defer fj.Close()
	emb, found, err := fj.Embed(imgs)
	if err != nil {
		t.Fatal(err)
	}
	want, err := fm.Embed(imgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || !found[0] || !found[1] || !slices.Equal(emb[0], want[0]) || !slices.Equal(emb[1], want[1]) {
		t.Errorf("tinyface judge: found %v, embeddings differ from the model's", found)
	}

	cj, err := judges.ImageTexts.Open(judges.Spec{Kind: CLIPKind})
	if err != nil {
		t.Fatal(err)
	}
	ie, err := cj.EmbedImages(imgs)
	if err != nil {
		t.Fatal(err)
	}
	te, err := cj.EmbedTexts([]string{"a man.", "a cat."})
	if err != nil {
		t.Fatal(err)
	}
	wi, _ := cm.EmbedImages(imgs)
	wt, _ := cm.EmbedTexts([]string{"a man.", "a cat."})
	if !slices.Equal(ie[1], wi[1]) || !slices.Equal(te[1], wt[1]) || slices.Equal(te[0], te[1]) {
		t.Errorf("tinyclip judge differs from the model")
	}

	sj, err := judges.ImageSims.Open(judges.Spec{Kind: SubjectKind})
	if err != nil {
		t.Fatal(err)
	}
	se, err := sj.EmbedImages(imgs)
	if err != nil {
		t.Fatal(err)
	}
	ws, _ := cm.EmbedImages([]image.Image{SubjectRegion(imgs[0]), SubjectRegion(imgs[1])})
	if !slices.Equal(se[0], ws[0]) || !slices.Equal(se[1], ws[1]) {
		t.Errorf("subject judge is not tinyclip on the subject region")
	}
	if slices.Equal(se[1], ie[1]) {
		t.Errorf("subject judge gives the whole image's embedding: the border was not masked")
	}

	for _, k := range []string{FaceKind, CLIPKind, SubjectKind} {
		d, err := func() (string, error) {
			switch k {
			case FaceKind:
				return judges.Faces.Digest(judges.Spec{Kind: k})
			case CLIPKind:
				return judges.ImageTexts.Digest(judges.Spec{Kind: k})
			}
			return judges.ImageSims.Digest(judges.Spec{Kind: k})
		}()
		if err != nil || len(d) != 64 {
			t.Errorf("%s digest %q, %v", k, d, err)
		}
	}
}

func TestSubjectRegionMasksTheBorder(t *testing.T) {
	img := portraits()[1]
	s := SubjectRegion(img)
	if got := color.RGBAModel.Convert(s.At(1, 1)).(color.RGBA); got != (color.RGBA{128, 128, 128, 255}) {
		t.Errorf("corner %v, want mid-grey", got)
	}
	if s.At(16, 31) != img.At(16, 31) || s.At(16, 16) != img.At(16, 16) {
		t.Errorf("subject region changed")
	}
}

func TestTinyJudgesRejectOptionsAndMissingFolders(t *testing.T) {
	_, err := judges.Faces.Open(judges.Spec{Kind: FaceKind, Options: map[string]string{"detector": "scrfd"}})
	if err == nil || !strings.Contains(err.Error(), "no options") || !strings.Contains(err.Error(), "detector") {
		t.Errorf("options: %v", err)
	}
	missing := t.TempDir() + "/nothing"
	if _, err := judges.ImageTexts.Open(judges.Spec{Kind: CLIPKind, Path: missing}); err == nil || !strings.Contains(err.Error(), "nothing") {
		t.Errorf("missing folder: %v", err)
	}
	if _, err := judges.ImageSims.Digest(judges.Spec{Kind: SubjectKind, Path: missing}); err == nil {
		t.Errorf("digest of a missing folder: no error")
	}
}
