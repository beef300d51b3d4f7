package celeba

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestOpenLayouts(t *testing.T) {
	for _, tc := range []struct {
		name           string
		official, crlf bool
		wantImages     string
	}{
		{"flat", false, false, "img_align_celeba"},
		{"flat-crlf", false, true, "img_align_celeba"},
		{"official", true, false, "Img/img_align_celeba"},
		{"official-crlf", true, true, "Img/img_align_celeba"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows := fixRows()
			root := writeFixture(t, tc.official, tc.crlf, rows, fixTexts(rows))
			d, err := Open(root, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := d.Layout().Images; got != tc.wantImages {
				t.Errorf("Layout().Images = %q, want %q", got, tc.wantImages)
			}
			if d.Layout().BBox == "" || d.Layout().Landmarks == "" || d.Layout().Partition == "" {
				t.Errorf("optional files not found: %+v", d.Layout())
			}
			recs := d.Records()
			if len(recs) != len(rows) || d.Total() != len(rows) || d.Len() != len(rows) {
				t.Fatalf("got %d records (total %d), want %d", len(recs), d.Total(), len(rows))
			}
			for i, r := range recs {
				w := rows[i]
				if r.File != w.file || r.Identity != w.id || int(r.Partition) != w.part {
					t.Errorf("record %d = %s id %d part %d, want %s id %d part %d", i, r.File, r.Identity, r.Partition, w.file, w.id, w.part)
				}
				for a := range NumAttributes {
					if r.Attributes.Get(a) != (w.attrs[a] == 1) {
						t.Errorf("%s: attribute %s = %v, want %d", r.File, attrNames[a], r.Attributes.Get(a), w.attrs[a])
					}
				}
				if r.Landmarks == nil || r.BBox == nil {
					t.Fatalf("%s: landmarks or bbox nil", r.File)
				}
				if got, want := r.Landmarks[1], [2]float32{float32(w.lm[2]), float32(w.lm[3])}; got != want {
					t.Errorf("%s: right eye = %v, want %v", r.File, got, want)
				}
				if *r.BBox != w.bbox {
					t.Errorf("%s: bbox = %v, want %v", r.File, *r.BBox, w.bbox)
				}
			}
			if !recs[0].Attributes.Has("Smiling") || recs[1].Attributes.Has("Smiling") || !recs[1].Attributes.Has("Male") {
				t.Errorf("attributes by name wrong: %v / %v", recs[0].Attributes.Names(), recs[1].Attributes.Names())
			}
			if err := d.Check(); err != nil {
				t.Errorf("Check: %v", err)
			}
			img, err := d.Image(recs[2])
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != 6 || b.Dy() != 7 {
				t.Errorf("image size %v, want 6x7", b)
			}
			if want := filepath.Join(root, filepath.FromSlash(tc.wantImages), "000003.jpg"); d.Path(recs[2]) != want {
				t.Errorf("Path = %q, want %q", d.Path(recs[2]), want)
			}
		})
	}
}

func TestOpenOptionalFilesAbsent(t *testing.T) {
	rows := fixRows()
	texts := fixTexts(rows)
	delete(texts, "part")
	delete(texts, "lm")
	delete(texts, "bbox")
	root := writeFixture(t, true, false, rows, texts)
	d, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range d.Records() {
		if r.Partition != Unknown || r.Landmarks != nil || r.BBox != nil {
			t.Fatalf("%s: want Unknown partition and nil landmarks/bbox, got %v %v %v", r.File, r.Partition, r.Landmarks, r.BBox)
		}
	}
	_, err = Open(root, Options{Split: "train"})
	if err == nil || !strings.Contains(err.Error(), "needs the partition file") || !strings.Contains(err.Error(), "Eval/list_eval_partition.txt") {
		t.Errorf("Split train without partition file: got %v", err)
	}
}

func TestOpenSortsByFileName(t *testing.T) {
	rows := fixRows()
	shuffled := []fixRow{rows[4], rows[0], rows[5], rows[2], rows[1], rows[3]}
	root := writeFixture(t, false, false, rows, fixTexts(shuffled))
	d, err := Open(root, Options{Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range d.Records() {
		got = append(got, r.File)
	}
	if want := []string{"000001.jpg", "000002.jpg", "000003.jpg"}; !slices.Equal(got, want) {
		t.Errorf("files = %v, want %v", got, want)
	}
}

func TestOptions(t *testing.T) {
	rows := fixRows() // ids 10 20 10 30 20 10; parts 0 0 1 2 0 1
	root := writeFixture(t, false, false, rows, fixTexts(rows))
	for _, tc := range []struct {
		name string
		opt  Options
		want []int // image numbers
	}{
		{"all", Options{}, []int{1, 2, 3, 4, 5, 6}},
		{"all-named", Options{Split: "all"}, []int{1, 2, 3, 4, 5, 6}},
		{"train", Options{Split: "train"}, []int{1, 2, 5}},
		{"val", Options{Split: "val"}, []int{3, 6}},
		{"valid", Options{Split: "valid"}, []int{3, 6}},
		{"test", Options{Split: "test"}, []int{4}},
		{"min2", Options{MinImagesPerIdentity: 2}, []int{1, 2, 3, 5, 6}},
		{"min3", Options{MinImagesPerIdentity: 3}, []int{1, 3, 6}},
		{"train-min2", Options{Split: "train", MinImagesPerIdentity: 2}, []int{2, 5}},
		{"maxid1", Options{MaxIdentities: 1}, []int{1, 3, 6}},
		{"maxid2", Options{MaxIdentities: 2}, []int{1, 2, 3, 5, 6}},
		{"min2-maxid1-after", Options{MinImagesPerIdentity: 2, MaxIdentities: 1}, []int{1, 3, 6}},
		{"limit", Options{Limit: 4}, []int{1, 2, 3, 4}},
		{"maxid2-limit", Options{MaxIdentities: 2, Limit: 3}, []int{1, 2, 3}},
		{"limit-larger", Options{Limit: 100}, []int{1, 2, 3, 4, 5, 6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Open(root, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, r := range d.Records() {
				var n int
				for _, c := range strings.TrimSuffix(r.File, ".jpg") {
					n = n*10 + int(c-'0')
				}
				got = append(got, n)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("images = %v, want %v", got, tc.want)
			}
			if d.Total() != 6 {
				t.Errorf("Total = %d, want 6", d.Total())
			}
		})
	}
	for _, opt := range []Options{{Split: "training"}, {Limit: -1}, {MaxIdentities: -2}, {MinImagesPerIdentity: -1}} {
		if _, err := Open(root, opt); err == nil || !strings.Contains(err.Error(), "Options") {
			t.Errorf("Open(%+v): want an Options error, got %v", opt, err)
		}
	}
}

func TestGroups(t *testing.T) {
	rows := fixRows()
	root := writeFixture(t, false, false, rows, fixTexts(rows))
	d, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := d.Groups()
	if len(g) != 3 || g[0].Identity != 10 || g[1].Identity != 20 || g[2].Identity != 30 {
		t.Fatalf("groups = %+v, want identities 10, 20, 30", g)
	}
	if len(g[0].Records) != 3 || g[0].Records[2].File != "000006.jpg" || len(g[2].Records) != 1 {
		t.Errorf("group sizes wrong: %d %d %d", len(g[0].Records), len(g[1].Records), len(g[2].Records))
	}
}

// TestMalformed edits one annotation file of a valid fixture and checks that
// Open fails with a message naming the file, the line and the problem.
func TestMalformed(t *testing.T) {
	replaceLine := func(text string, line int, with string) string {
		ls := strings.Split(text, "\n")
		ls[line-1] = with
		return strings.Join(ls, "\n")
	}
	editLine := func(text string, line int, old, new string) string {
		ls := strings.Split(text, "\n")
		ls[line-1] = strings.Replace(ls[line-1], old, new, 1)
		return strings.Join(ls, "\n")
	}
	dropLine := func(text string, line int) string {
		ls := strings.Split(text, "\n")
		return strings.Join(slices.Delete(ls, line-1, line), "\n")
	}
	for _, tc := range []struct {
		name string
		edit func(m map[string]string)
		want []string
	}{
		{"attr-field-count", func(m map[string]string) { m["attr"] = editLine(m["attr"], 4, " -1", "") },
			[]string{"list_attr_celeba.txt:4: want 41 fields (image file and 40 attribute values), got 40"}},
		{"attr-value", func(m map[string]string) { m["attr"] = editLine(m["attr"], 5, " 1 -1", " 0 -1") },
			[]string{"list_attr_celeba.txt:5: field 33 (Smiling): want -1 or 1, got \"0\""}},
		{"attr-nonnumeric", func(m map[string]string) { m["attr"] = editLine(m["attr"], 3, "-1", "no") },
			[]string{"list_attr_celeba.txt:3: field 2 (5_o_Clock_Shadow): want -1 or 1, got \"no\""}},
		{"attr-count-high", func(m map[string]string) { m["attr"] = replaceLine(m["attr"], 1, "7") },
			[]string{"list_attr_celeba.txt:1: count line says 7 images, but the file has 6 image rows"}},
		{"attr-count-text", func(m map[string]string) { m["attr"] = replaceLine(m["attr"], 1, "six") },
			[]string{"list_attr_celeba.txt:1: want the image count"}},
		{"attr-no-count", func(m map[string]string) { m["attr"] = dropLine(m["attr"], 1) },
			[]string{"list_attr_celeba.txt:1: want the image count alone on the first line, got 40 fields"}},
		{"attr-header-name", func(m map[string]string) { m["attr"] = editLine(m["attr"], 2, "Smiling", "Smiley") },
			[]string{"list_attr_celeba.txt:2: attribute name 32: \"Smiley\" is not a CelebA attribute"}},
		{"attr-header-short", func(m map[string]string) { m["attr"] = editLine(m["attr"], 2, "Young", "") },
			[]string{"list_attr_celeba.txt:2: want 40 attribute names", "got 39"}},
		{"attr-header-repeat", func(m map[string]string) { m["attr"] = editLine(m["attr"], 2, "Young", "Male") },
			[]string{"list_attr_celeba.txt:2: attribute name 40: \"Male\" repeats name 21"}},
		{"attr-duplicate", func(m map[string]string) { m["attr"] = editLine(m["attr"], 6, "000004.jpg", "000003.jpg") },
			[]string{"list_attr_celeba.txt:6: duplicate image 000003.jpg (first on line 5)"}},
		{"attr-bad-name", func(m map[string]string) { m["attr"] = editLine(m["attr"], 3, "000001.jpg", "../000001.jpg") },
			[]string{"list_attr_celeba.txt:3: want an image file name like 000001.jpg in field 1, got \"../000001.jpg\""}},
		{"attr-empty", func(m map[string]string) { m["attr"] = "" },
			[]string{"list_attr_celeba.txt: empty file, want the image count on line 1"}},
		{"attr-only-count", func(m map[string]string) { m["attr"] = "0\n" },
			[]string{"list_attr_celeba.txt: ends after the count line"}},
		{"id-field-count", func(m map[string]string) { m["id"] = editLine(m["id"], 2, " 20", " 20 7") },
			[]string{"identity_CelebA.txt:2: want 2 fields (image_id identity), got 3"}},
		{"id-nonnumeric", func(m map[string]string) { m["id"] = editLine(m["id"], 3, " 10", " ten") },
			[]string{"identity_CelebA.txt:3: field 2 (identity): want a positive integer, got \"ten\""}},
		{"id-unknown-image", func(m map[string]string) { m["id"] += "000099.jpg 5\n" },
			[]string{"identity_CelebA.txt:7: image 000099.jpg is not listed in list_attr_celeba.txt"}},
		{"id-missing-row", func(m map[string]string) { m["id"] = dropLine(m["id"], 6) },
			[]string{"identity_CelebA.txt: no row for 000006.jpg (listed on line 8 of list_attr_celeba.txt); 1 of 6 images have no row"}},
		{"id-duplicate", func(m map[string]string) { m["id"] += "000002.jpg 20\n" },
			[]string{"identity_CelebA.txt:7: duplicate image 000002.jpg (first on line 2)"}},
		{"part-value", func(m map[string]string) { m["part"] = editLine(m["part"], 4, " 2", " 3") },
			[]string{"list_eval_partition.txt:4: field 2 (partition): want 0 (train), 1 (val) or 2 (test), got \"3\""}},
		{"part-missing-row", func(m map[string]string) { m["part"] = dropLine(m["part"], 1) },
			[]string{"list_eval_partition.txt: no row for 000001.jpg (listed on line 3 of list_attr_celeba.txt)"}},
		{"lm-nonnumeric", func(m map[string]string) { m["lm"] = editLine(m["lm"], 4, "   81", " 8l") },
			[]string{"list_landmarks_align_celeba.txt:4: field 4 (righteye_x): want a number, got \"8l\""}},
		{"lm-nan", func(m map[string]string) { m["lm"] = editLine(m["lm"], 3, "   60", " NaN") },
			[]string{"list_landmarks_align_celeba.txt:3: field 2 (lefteye_x): want a number, got \"NaN\""}},
		{"lm-header", func(m map[string]string) { m["lm"] = editLine(m["lm"], 2, "nose_x", "nose_X") },
			[]string{"list_landmarks_align_celeba.txt:2: header name 5: want \"nose_x\", got \"nose_X\""}},
		{"lm-header-missing", func(m map[string]string) { m["lm"] = dropLine(m["lm"], 2) },
			[]string{"list_landmarks_align_celeba.txt:2: want header", "got 11 names"}},
		{"lm-count", func(m map[string]string) { m["lm"] = replaceLine(m["lm"], 1, "5") },
			[]string{"list_landmarks_align_celeba.txt:1: count line says 5 images, but the file has 6 image rows"}},
		{"lm-field-count", func(m map[string]string) { m["lm"] = editLine(m["lm"], 8, "  155", "") },
			[]string{"list_landmarks_align_celeba.txt:8: want 11 fields", "got 10"}},
		{"bbox-nonnumeric", func(m map[string]string) { m["bbox"] = editLine(m["bbox"], 5, "250", "25.0") },
			[]string{"list_bbox_celeba.txt:5: field 5 (height): want an integer, got \"25.0\""}},
		{"bbox-header", func(m map[string]string) { m["bbox"] = replaceLine(m["bbox"], 2, "image_id x y w h") },
			[]string{"list_bbox_celeba.txt:2: header name 2: want \"x_1\", got \"x\""}},
		{"bbox-unknown-image", func(m map[string]string) { m["bbox"] = editLine(m["bbox"], 3, "000001.jpg", "100001.jpg") },
			[]string{"list_bbox_celeba.txt:3: image 100001.jpg is not listed in list_attr_celeba.txt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows := fixRows()
			texts := fixTexts(rows)
			tc.edit(texts)
			for _, crlf := range []bool{false, true} {
				root := writeFixture(t, false, crlf, rows, texts)
				_, err := Open(root, Options{})
				if err == nil {
					t.Fatalf("crlf=%v: Open succeeded, want error containing %q", crlf, tc.want)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("crlf=%v: error %q\nwant it to contain %q", crlf, err, w)
					}
				}
				if !strings.Contains(err.Error(), root) {
					t.Errorf("error %q does not name the dataset root %s", err, root)
				}
			}
		})
	}
}

func TestMissingRequired(t *testing.T) {
	for _, tc := range []struct {
		drop string
		want string
	}{
		{"attr", "no attribute file under %s: tried list_attr_celeba.txt (flat torchvision/Kaggle layout) and Anno/list_attr_celeba.txt (official Google-Drive layout)"},
		{"id", "no identity file under %s: tried identity_CelebA.txt (flat torchvision/Kaggle layout) and Anno/identity_CelebA.txt"},
		{"images", "no image folder under %s: tried img_align_celeba (flat torchvision/Kaggle layout) and Img/img_align_celeba"},
	} {
		t.Run(tc.drop, func(t *testing.T) {
			rows := fixRows()
			texts := fixTexts(rows)
			if tc.drop != "images" {
				delete(texts, tc.drop)
			} else {
				rows = nil
			}
			root := writeFixture(t, true, false, rows, texts)
			_, err := Open(root, Options{})
			if want := strings.Replace(tc.want, "%s", root, 1); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("got %v\nwant it to contain %q", err, want)
			}
		})
	}
	// A file where the folder should be is an error, not "missing".
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "img_align_celeba"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(root, Options{}); err == nil || !strings.Contains(err.Error(), "want a folder as the image folder") {
		t.Errorf("image folder is a file: got %v", err)
	}
}

func TestImageErrors(t *testing.T) {
	rows := fixRows()
	root := writeFixture(t, false, false, rows, fixTexts(rows))
	dir := filepath.Join(root, "img_align_celeba")
	// 000002.jpg: truncated JPEG.
	full := tinyJPEG(t, 6, 7, 1)
	if err := os.WriteFile(filepath.Join(dir, "000002.jpg"), full[:len(full)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	// 000003.jpg: actually a PNG (accepted).
	var pb bytes.Buffer
	if err := png.Encode(&pb, image.NewGray(image.Rect(0, 0, 3, 5))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "000003.jpg"), pb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// 000004.jpg: not an image; 000005.jpg: empty; 000006.jpg: missing.
	if err := os.WriteFile(filepath.Join(dir, "000004.jpg"), []byte("<html>"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "000005.jpg"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "000006.jpg")); err != nil {
		t.Fatal(err)
	}
	d, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	recs := d.Records()
	for _, tc := range []struct {
		i    int
		want string // "" means success
	}{
		{0, ""},
		{1, "img_align_celeba/000002.jpg: decode jpeg: unexpected EOF"},
		{2, ""},
		{3, "img_align_celeba/000004.jpg: not a JPEG or PNG image (starts with 3c 68 74 6d 6c 3e)"},
		{4, "img_align_celeba/000005.jpg: empty file"},
		{5, "img_align_celeba/000006.jpg: listed in list_attr_celeba.txt but missing on disk"},
	} {
		img, err := d.Image(recs[tc.i])
		if tc.want == "" {
			if err != nil || img == nil {
				t.Errorf("%s: %v", recs[tc.i].File, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", recs[tc.i].File, err, tc.want)
		}
	}
	if _, err := d.Image(recs[5]); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing image: %v does not wrap fs.ErrNotExist", err)
	}
	if data, format, err := d.ImageBytes(recs[2]); err != nil || format != "png" || !bytes.Equal(data, pb.Bytes()) {
		t.Errorf("ImageBytes(png) = %d bytes, %q, %v", len(data), format, err)
	}
	if _, err := d.Image(Record{File: "../list_attr_celeba.txt"}); err == nil || !strings.Contains(err.Error(), "want a plain file name") {
		t.Errorf("path escape: got %v", err)
	}
	err = d.Check()
	if err == nil || !strings.Contains(err.Error(), "1 of 6 images listed in list_attr_celeba.txt are missing or not regular files: 000006.jpg") {
		t.Errorf("Check: got %v", err)
	}
	if err := os.Remove(filepath.Join(dir, "000001.jpg")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "000001.jpg"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := d.Check(); err == nil || !strings.Contains(err.Error(), "2 of 6 images") || !strings.Contains(err.Error(), "000001.jpg, 000006.jpg") {
		t.Errorf("Check with a folder in place of an image: got %v", err)
	}
}
