package celeba

import (
	"fmt"
	"io"
	"math"
	"strconv"
)

// master is the parsed attribute file: the list of images every other
// annotation file must cover exactly.
type master struct {
	path  string           // path of list_attr_celeba.txt, for messages
	files []string         // image file names in file order
	lines []int32          // line of each image in the attribute file
	attrs []Attributes     // attributes of each image
	index map[string]int32 // file name -> position in files
}

// parseAttributes reads list_attr_celeba.txt: the image count, the 40
// attribute names, then one row per image of its file name and 40 values of
// -1 or 1. The names may come in any order but must be exactly the 40 CelebA
// attributes; values are stored by name.
func parseAttributes(path string, r io.Reader) (*master, error) {
	t := newTable(path, r)
	count, err := t.readCount()
	if err != nil {
		return nil, err
	}
	if !t.next() {
		if err := t.err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%s: ends after the count line, want the %d attribute names next (5_o_Clock_Shadow ... Young)", path, NumAttributes)
	}
	if len(t.fields) != NumAttributes {
		return nil, t.errorf("want %d attribute names (5_o_Clock_Shadow ... Young), got %d", NumAttributes, len(t.fields))
	}
	var bit [NumAttributes]int // column -> bit in Attributes
	var seenCol [NumAttributes]int
	for c, f := range t.fields {
		i, ok := attrIndex[string(f)]
		if !ok {
			return nil, t.errorf("attribute name %d: %q is not a CelebA attribute (want names like 5_o_Clock_Shadow, Smiling, Young)", c+1, f)
		}
		if seenCol[i] != 0 {
			return nil, t.errorf("attribute name %d: %q repeats name %d", c+1, f, seenCol[i])
		}
		seenCol[i] = c + 1
		bit[c] = i
	}
	m := &master{
		path:  path,
		files: make([]string, 0, count),
		lines: make([]int32, 0, count),
		attrs: make([]Attributes, 0, count),
		index: make(map[string]int32, count),
	}
	for t.next() {
		if len(t.fields) != 1+NumAttributes {
			return nil, t.errorf("want %d fields (image file and %d attribute values), got %d", 1+NumAttributes, NumAttributes, len(t.fields))
		}
		name := t.fields[0]
		if !validName(name) {
			return nil, t.errorf("want an image file name like 000001.jpg in field 1, got %q", name)
		}
		if prev, dup := m.index[string(name)]; dup {
			return nil, t.errorf("duplicate image %s (first on line %d)", name, m.lines[prev])
		}
		var a Attributes
		for c, v := range t.fields[1:] {
			switch string(v) {
			case "1":
				a |= 1 << uint(bit[c])
			case "-1":
			default:
				return nil, t.errorf("field %d (%s): want -1 or 1, got %q", c+2, attrNames[bit[c]], v)
			}
		}
		s := string(name)
		m.index[s] = int32(len(m.files))
		m.files = append(m.files, s)
		m.lines = append(m.lines, int32(t.line))
		m.attrs = append(m.attrs, a)
	}
	if err := t.err(); err != nil {
		return nil, err
	}
	if count != len(m.files) {
		return nil, fmt.Errorf("%s:1: count line says %d images, but the file has %d image rows", path, count, len(m.files))
	}
	return m, nil
}

// readKeyed reads image rows "file v1 ... vN" from t until the end of the
// file, checks that each names an image of the master list exactly once and
// that every image has a row, and calls fn with the image's position and
// its N values. columns describes the row for messages, e.g. "image_id
// identity". It returns the number of rows.
func readKeyed(t *table, m *master, columns []string, fn func(i int32, vals [][]byte) error) (int, error) {
	seen := make([]int32, len(m.files)) // line of each image's row; 0 = none yet
	rows := 0
	for t.next() {
		if len(t.fields) != len(columns) {
			return 0, t.errorf("want %d fields (%s), got %d", len(columns), joinStrings(columns), len(t.fields))
		}
		name := t.fields[0]
		// Rows usually come in the attribute file's order: try that first.
		i, ok := int32(rows), rows < len(m.files) && m.files[rows] == string(name)
		if !ok {
			i, ok = m.index[string(name)]
		}
		if !ok {
			if !validName(name) {
				return 0, t.errorf("want an image file name like 000001.jpg in field 1, got %q", name)
			}
			return 0, t.errorf("image %s is not listed in %s", name, base(m.path))
		}
		if seen[i] != 0 {
			return 0, t.errorf("duplicate image %s (first on line %d)", name, seen[i])
		}
		seen[i] = int32(t.line)
		if err := fn(i, t.fields[1:]); err != nil {
			return 0, t.errorf("%v", err)
		}
		rows++
	}
	if err := t.err(); err != nil {
		return 0, err
	}
	if rows != len(m.files) {
		missing, first := 0, -1
		for i, l := range seen {
			if l == 0 {
				if first < 0 {
					first = i
				}
				missing++
			}
		}
		return 0, fmt.Errorf("%s: no row for %s (listed on line %d of %s); %d of %d images have no row",
			t.path, m.files[first], m.lines[first], base(m.path), missing, len(m.files))
	}
	return rows, nil
}

// parseIdentity reads identity_CelebA.txt ("000001.jpg 2880", no count or
// header line) and returns the identity of each master image.
func parseIdentity(path string, r io.Reader, m *master) ([]int32, error) {
	ids := make([]int32, len(m.files))
	cols := []string{"image_id", "identity"}
	_, err := readKeyed(newTable(path, r), m, cols, func(i int32, v [][]byte) error {
		id, err := strconv.ParseInt(string(v[0]), 10, 32)
		if err != nil || id < 1 {
			return fmt.Errorf("field 2 (identity): want a positive integer, got %q", v[0])
		}
		ids[i] = int32(id)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// parsePartition reads list_eval_partition.txt ("000001.jpg 0", no count or
// header line; 0 train, 1 val, 2 test).
func parsePartition(path string, r io.Reader, m *master) ([]Partition, error) {
	parts := make([]Partition, len(m.files))
	cols := []string{"image_id", "partition"}
	_, err := readKeyed(newTable(path, r), m, cols, func(i int32, v [][]byte) error {
		switch string(v[0]) {
		case "0":
			parts[i] = Train
		case "1":
			parts[i] = Val
		case "2":
			parts[i] = Test
		default:
			return fmt.Errorf("field 2 (partition): want 0 (train), 1 (val) or 2 (test), got %q", v[0])
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return parts, nil
}

// parseLandmarks reads list_landmarks_align_celeba.txt: count line, the
// header of landmarkHeader, then ten coordinates per image.
func parseLandmarks(path string, r io.Reader, m *master) ([][NumLandmarks][2]float32, error) {
	out := make([][NumLandmarks][2]float32, len(m.files))
	cols := append([]string{"image_id"}, landmarkHeader...)
	err := readCounted(path, r, m, landmarkHeader, cols, func(i int32, v [][]byte) error {
		for k, f := range v {
			x, err := strconv.ParseFloat(string(f), 32)
			if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
				return fmt.Errorf("field %d (%s): want a number, got %q", k+2, landmarkHeader[k], f)
			}
			out[i][k/2][k%2] = float32(x)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// parseBBox reads list_bbox_celeba.txt: count line, the header "image_id x_1
// y_1 width height", then four integers per image.
func parseBBox(path string, r io.Reader, m *master) ([][4]int, error) {
	out := make([][4]int, len(m.files))
	err := readCounted(path, r, m, bboxHeader, bboxHeader, func(i int32, v [][]byte) error {
		for k, f := range v {
			x, err := strconv.Atoi(string(f))
			if err != nil {
				return fmt.Errorf("field %d (%s): want an integer, got %q", k+2, bboxHeader[k+1], f)
			}
			out[i][k] = x
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// readCounted reads a file that starts with a count line and the given header line (the
// landmark and box files): rows of the columns cols, keyed by image, whose fields after the
// image name fn parses; the count line must match the rows.
func readCounted(path string, r io.Reader, m *master, header, cols []string, fn func(i int32, vals [][]byte) error) error {
	t := newTable(path, r)
	count, err := t.readCount()
	if err != nil {
		return err
	}
	if err := t.readHeader(header); err != nil {
		return err
	}
	rows, err := readKeyed(t, m, cols, fn)
	if err != nil {
		return err
	}
	if rows != count {
		return fmt.Errorf("%s:1: count line says %d images, but the file has %d image rows", path, count, rows)
	}
	return nil
}
