package afhq

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func encode(t *testing.T, format string, seed int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 5, 4))
	for i := range img.Pix {
		img.Pix[i] = uint8(seed*31 + i)
	}
	img.Set(0, 0, color.White)
	var b bytes.Buffer
	var err error
	if format == "png" {
		err = png.Encode(&b, img)
	} else {
		err = jpeg.Encode(&b, img, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// writeAFHQ writes files (relative path -> content) under a new temp root.
func writeAFHQ(t *testing.T, files map[string][]byte) string {
	t.Helper()
	root := t.TempDir()
	for rel, data := range files {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// v1Files is an AFHQ v1 tree: two images per train class, one per val class,
// plus files that must be ignored.
func v1Files(t *testing.T) map[string][]byte {
	m := map[string][]byte{}
	for i, c := range Classes {
		m[fmt.Sprintf("train/%s/flickr_%s_000002.jpg", c, c)] = encode(t, "jpeg", i)
		m[fmt.Sprintf("train/%s/flickr_%s_000001.jpg", c, c)] = encode(t, "jpeg", i+3)
		m[fmt.Sprintf("val/%s/pixabay_%s_000100.jpg", c, c)] = encode(t, "jpeg", i+6)
	}
	m["train/cat/.DS_Store"] = []byte("junk")
	m["train/cat/notes.txt"] = []byte("junk")
	return m
}

func names(d *Dataset) []string {
	var out []string
	for _, r := range d.Records() {
		out = append(out, r.Split+"/"+r.Class+"/"+r.File)
	}
	return out
}

func TestOpen(t *testing.T) {
	root := writeAFHQ(t, v1Files(t))
	for _, tc := range []struct {
		name string
		opt  Options
		want []string
	}{
		{"all", Options{}, []string{
			"train/cat/flickr_cat_000001.jpg", "train/cat/flickr_cat_000002.jpg",
			"train/dog/flickr_dog_000001.jpg", "train/dog/flickr_dog_000002.jpg",
			"train/wild/flickr_wild_000001.jpg", "train/wild/flickr_wild_000002.jpg",
			"val/cat/pixabay_cat_000100.jpg", "val/dog/pixabay_dog_000100.jpg", "val/wild/pixabay_wild_000100.jpg"}},
		{"val", Options{Split: "val"}, []string{
			"val/cat/pixabay_cat_000100.jpg", "val/dog/pixabay_dog_000100.jpg", "val/wild/pixabay_wild_000100.jpg"}},
		{"classes", Options{Split: "train", Classes: []string{"dog", "cat", "dog"}}, []string{
			"train/cat/flickr_cat_000001.jpg", "train/cat/flickr_cat_000002.jpg",
			"train/dog/flickr_dog_000001.jpg", "train/dog/flickr_dog_000002.jpg"}},
		{"max-per-class", Options{MaxPerClass: 1, Classes: []string{"wild"}}, []string{
			"train/wild/flickr_wild_000001.jpg", "val/wild/pixabay_wild_000100.jpg"}},
		{"limit", Options{Limit: 3}, []string{
			"train/cat/flickr_cat_000001.jpg", "train/cat/flickr_cat_000002.jpg", "train/dog/flickr_dog_000001.jpg"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Open(root, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(d); !slices.Equal(got, tc.want) {
				t.Errorf("records = %v\nwant %v", got, tc.want)
			}
			if d.Len() != len(tc.want) {
				t.Errorf("Len = %d, want %d", d.Len(), len(tc.want))
			}
		})
	}
}

func TestImage(t *testing.T) {
	files := map[string][]byte{}
	for _, c := range Classes {
		files["train/"+c+"/a.png"] = encode(t, "png", 1)
		files["test/"+c+"/b.png"] = encode(t, "png", 2)
	}
	full := encode(t, "jpeg", 3)
	files["train/dog/broken.jpg"] = full[:len(full)/2]
	files["train/dog/fake.png"] = []byte("GIF89a")
	root := writeAFHQ(t, files)
	d, err := Open(root, Options{Split: "train", Classes: []string{"dog"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(d); !slices.Equal(got, []string{"train/dog/a.png", "train/dog/broken.jpg", "train/dog/fake.png"}) {
		t.Fatalf("records = %v", got)
	}
	recs := d.Records()
	img, err := d.Image(recs[0])
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 5 || b.Dy() != 4 {
		t.Errorf("size %v, want 5x4", b)
	}
	if _, err := d.Image(recs[1]); err == nil || !strings.Contains(err.Error(), filepath.Join("train", "dog", "broken.jpg")+": decode jpeg: unexpected EOF") {
		t.Errorf("truncated jpeg: got %v", err)
	}
	if _, err := d.Image(recs[2]); err == nil || !strings.Contains(err.Error(), "fake.png: not a JPEG or PNG image") {
		t.Errorf("gif posing as png: got %v", err)
	}
	if err := os.Remove(d.Path(recs[0])); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Image(recs[0]); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "a.png: missing on disk") {
		t.Errorf("removed image: got %v", err)
	}
	if _, err := d.Image(Record{Split: "train", Class: "dog", File: "../../x.png"}); err == nil || !strings.Contains(err.Error(), "plain file name") {
		t.Errorf("path escape: got %v", err)
	}
	// AFHQ v2 has test/, not val/: the error says so.
	if _, err := Open(root, Options{Split: "val"}); err == nil || !strings.Contains(err.Error(), `use Split "test"`) {
		t.Errorf("Split val on v2: got %v", err)
	}
	all, err := Open(root, Options{})
	if err != nil || all.Len() != 7 || all.Records()[6].Split != "test" {
		t.Errorf("v2 all: len %d, err %v", all.Len(), err)
	}
}

func TestOpenErrors(t *testing.T) {
	missingWild := v1Files(t)
	delete(missingWild, "val/wild/pixabay_wild_000100.jpg")
	emptyDog := v1Files(t)
	delete(emptyDog, "train/dog/flickr_dog_000001.jpg")
	delete(emptyDog, "train/dog/flickr_dog_000002.jpg")
	emptyDog["train/dog/readme.txt"] = []byte("x")
	for _, tc := range []struct {
		name  string
		files map[string][]byte
		opt   Options
		want  string
	}{
		{"no-splits", map[string][]byte{"cats/a.jpg": {0xff, 0xd8}}, Options{}, "has no train, val or test folder: want ROOT/{train,val}/{cat,dog,wild}"},
		{"missing-class", missingWild, Options{}, filepath.Join("val", "wild") + ": want ROOT/{train,val}/{cat,dog,wild}/*.{jpg,png}"},
		{"missing-class-not-selected", missingWild, Options{Classes: []string{"cat", "dog"}}, ""},
		{"empty-class", emptyDog, Options{}, filepath.Join("train", "dog") + " holds no .jpg or .png image"},
		{"missing-split", v1Files(t), Options{Split: "test"}, `missing folder`},
		{"bad-split", v1Files(t), Options{Split: "training"}, `Options.Split: want all, train, val or test, got "training"`},
		{"bad-class", v1Files(t), Options{Classes: []string{"cats"}}, `Options.Classes: want cat, dog or wild, got "cats"`},
		{"negative", v1Files(t), Options{Limit: -1}, "must be >= 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := writeAFHQ(t, tc.files)
			_, err := Open(root, tc.opt)
			if tc.want == "" {
				if err != nil {
					t.Errorf("want success, got %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := Open(filepath.Join(t.TempDir(), "nope"), Options{}); err == nil || !strings.Contains(err.Error(), "is not a folder") {
		t.Errorf("missing root: got %v", err)
	}
}
