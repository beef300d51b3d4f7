package synthfaces

import (
	"flag"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var (
	sheetPath    = flag.String("sheet", "", "TestContactSheet writes its contact sheet PNG here (default: a temporary file)")
	sheetClasses = flag.String("sheet-classes", "man,woman,boy,girl,person,cat,dog", "comma-separated classes of the contact sheet's identities")
	sheetSize    = flag.Int("sheet-size", 32, "image size of the contact sheet's renders")
)

// contactSheet renders rows identities x cols images (plus a last column with
// the mask of image 0), each scaled up by zoom with nearest-neighbour.
func contactSheet(w *World, rows, cols, zoom int) (*image.NRGBA, error) {
	size := w.Config().Size
	cell := size*zoom + 2
	out := image.NewNRGBA(image.Rect(0, 0, (cols+1)*cell, rows*cell))
	for i := range out.Pix {
		out.Pix[i] = 255
	}
	for row := range rows {
		for col := range cols {
			s, err := w.Render(row, col)
			if err != nil {
				return nil, err
			}
			for y := range size * zoom {
				for x := range size * zoom {
					out.Set(col*cell+x, row*cell+y, s.Image.At(x/zoom, y/zoom))
					if col == 0 {
						g := s.Mask.GrayAt(x/zoom, y/zoom).Y
						out.Set(cols*cell+x, row*cell+y, color.NRGBA{g, g, g, 255})
					}
				}
			}
		}
	}
	return out, nil
}

// TestContactSheet renders a contact sheet of 8 identities x 8 images (and a
// mask column). With -sheet=PATH it writes there for a person to look at;
// without, to a temporary directory. Either way it checks the sheet's size.
func TestContactSheet(t *testing.T) {
	classes := strings.Split(*sheetClasses, ",")
	w, err := New(Config{Seed: 7, Identities: 8, ImagesPerIdentity: 8, Size: *sheetSize, Classes: classes})
	if err != nil {
		t.Fatal(err)
	}
	const rows, cols, zoom = 8, 8, 4
	img, err := contactSheet(w, rows, cols, zoom)
	if err != nil {
		t.Fatal(err)
	}
	path := *sheetPath
	if path == "" {
		path = filepath.Join(t.TempDir(), "sheet.png")
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cfg, err := png.DecodeConfig(r)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	cell := *sheetSize*zoom + 2
	if cfg.Width != (cols+1)*cell || cfg.Height != rows*cell {
		t.Errorf("%s: sheet is %dx%d, want %dx%d", path, cfg.Width, cfg.Height, (cols+1)*cell, rows*cell)
	}
	t.Logf("contact sheet: %s", path)
}
