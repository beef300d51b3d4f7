package celeba

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixRow is one image of the test fixture.
type fixRow struct {
	file  string
	id    int
	part  int
	attrs [NumAttributes]int // -1 or 1
	lm    [10]int
	bbox  [4]int
}

// fixRows returns six images of three identities (10, 20, 30) over the three
// partitions, with Smiling set on odd rows and Male on identity 20.
func fixRows() []fixRow {
	ids := []int{10, 20, 10, 30, 20, 10}
	parts := []int{0, 0, 1, 2, 0, 1}
	var rows []fixRow
	for i := range ids {
		r := fixRow{file: fmt.Sprintf("%06d.jpg", i+1), id: ids[i], part: parts[i]}
		for a := range r.attrs {
			r.attrs[a] = -1
		}
		if i%2 == 0 {
			r.attrs[31] = 1 // Smiling
		}
		if ids[i] == 20 {
			r.attrs[20] = 1 // Male
		}
		r.attrs[39] = 1 // Young
		for k := range r.lm {
			r.lm[k] = 60 + 10*k + i
		}
		r.bbox = [4]int{90 + i, 40, 200 + i, 250}
		rows = append(rows, r)
	}
	return rows
}

// layoutPaths maps each annotation file to its place in a layout.
func layoutPaths(official bool) map[string]string {
	if official {
		return map[string]string{
			"images": "Img/img_align_celeba", "attr": "Anno/list_attr_celeba.txt",
			"id": "Anno/identity_CelebA.txt", "part": "Eval/list_eval_partition.txt",
			"lm": "Anno/list_landmarks_align_celeba.txt", "bbox": "Anno/list_bbox_celeba.txt",
		}
	}
	return map[string]string{
		"images": "img_align_celeba", "attr": "list_attr_celeba.txt",
		"id": "identity_CelebA.txt", "part": "list_eval_partition.txt",
		"lm": "list_landmarks_align_celeba.txt", "bbox": "list_bbox_celeba.txt",
	}
}

// fixTexts renders the five annotation files of rows as the real files look:
// count lines, headers, values padded with runs of spaces.
func fixTexts(rows []fixRow) map[string]string {
	var attr, id, part, lm, bb strings.Builder
	fmt.Fprintf(&attr, "%d\n%s \n", len(rows), strings.Join(attrNames[:], " "))
	fmt.Fprintf(&lm, "%d\n%s\n", len(rows), strings.Join(landmarkHeader, " "))
	fmt.Fprintf(&bb, "%d\n%s\n", len(rows), strings.Join(bboxHeader, " "))
	for _, r := range rows {
		attr.WriteString(r.file)
		for _, v := range r.attrs {
			fmt.Fprintf(&attr, " %2d", v)
		}
		attr.WriteString("\n")
		fmt.Fprintf(&id, "%s %d\n", r.file, r.id)
		fmt.Fprintf(&part, "%s %d\n", r.file, r.part)
		lm.WriteString(r.file)
		for _, v := range r.lm {
			fmt.Fprintf(&lm, " %4d", v)
		}
		lm.WriteString("\n")
		fmt.Fprintf(&bb, "%s    %d   %d   %d   %d\n", r.file, r.bbox[0], r.bbox[1], r.bbox[2], r.bbox[3])
	}
	return map[string]string{"attr": attr.String(), "id": id.String(), "part": part.String(), "lm": lm.String(), "bbox": bb.String()}
}

// tinyJPEG encodes a w x h JPEG whose colour depends on seed.
func tinyJPEG(t testing.TB, w, h, seed int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(40 * seed), uint8(x * 20), uint8(y * 20), 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// writeFixture writes a CelebA directory into a new temp folder: texts keyed
// like fixTexts (a missing key leaves that file out, "" writes an empty
// file), one 6x7 JPEG per row, and returns the root.
func writeFixture(t testing.TB, official, crlf bool, rows []fixRow, texts map[string]string) string {
	t.Helper()
	root := t.TempDir()
	paths := layoutPaths(official)
	write := func(rel string, data []byte) {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for key, text := range texts {
		if crlf {
			text = strings.ReplaceAll(text, "\n", "\r\n")
		}
		write(paths[key], []byte(text))
	}
	for i, r := range rows {
		write(paths["images"]+"/"+r.file, tinyJPEG(t, 6, 7, i))
	}
	return root
}
