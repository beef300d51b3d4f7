// Package celeba reads the CelebA face dataset (aligned images plus
// annotations) exactly as it is distributed, in either the flat layout of
// torchvision and Kaggle mirrors:
//
//	ROOT/img_align_celeba/000001.jpg
//	ROOT/list_attr_celeba.txt
//	ROOT/identity_CelebA.txt
//	ROOT/list_eval_partition.txt            (optional)
//	ROOT/list_landmarks_align_celeba.txt    (optional)
//	ROOT/list_bbox_celeba.txt               (optional)
//
// or the official Google-Drive layout:
//
//	ROOT/Img/img_align_celeba/000001.jpg
//	ROOT/Anno/list_attr_celeba.txt
//	ROOT/Anno/identity_CelebA.txt
//	ROOT/Anno/list_landmarks_align_celeba.txt   (optional)
//	ROOT/Anno/list_bbox_celeba.txt              (optional)
//	ROOT/Eval/list_eval_partition.txt           (optional)
//
// Each file is looked up in the flat place first, then the official one.
// Open validates every annotation row up front; every problem is an error
// naming the file, the line and what was expected. Images are read lazily by
// Image, or checked all at once by Check.
package celeba

import (
	"cmp"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cocoflow/cocoflow/datasets/imageio"
)

// Partition is the evaluation partition of an image in list_eval_partition.txt.
type Partition int

// Partition values. Unknown is used for every image when the dataset has no
// partition file.
const (
	Unknown Partition = -1
	Train   Partition = 0
	Val     Partition = 1
	Test    Partition = 2
)

// String returns "train", "val", "test" or "unknown".
func (p Partition) String() string {
	switch p {
	case Train:
		return "train"
	case Val:
		return "val"
	case Test:
		return "test"
	}
	return "unknown"
}

// Record is one annotated image.
type Record struct {
	// File is the image file name as listed in the annotations, e.g. "000001.jpg".
	File string
	// Identity is the celebrity identity from identity_CelebA.txt (1..10177 in
	// the full dataset).
	Identity int
	// Partition is the split from list_eval_partition.txt, or Unknown when the
	// dataset has no partition file.
	Partition Partition
	// Attributes are the 40 binary attributes from list_attr_celeba.txt.
	Attributes Attributes
	// Landmarks are the five points of list_landmarks_align_celeba.txt, in
	// the order of LandmarkNames, as (x, y) pixel coordinates in the aligned
	// 178x218 image; nil when the dataset has no landmark file.
	Landmarks *[NumLandmarks][2]float32
	// BBox is the face box (x_1, y_1, width, height) from list_bbox_celeba.txt.
	// Its coordinates refer to the original in-the-wild images (img_celeba),
	// NOT to the aligned images this package reads; it is kept for
	// completeness. nil when the dataset has no bbox file.
	BBox *[4]int
}

// Options selects a subset of the dataset. The zero value selects every
// image. Filters apply in this order, each on the images sorted by file name:
// Split, MinImagesPerIdentity, MaxIdentities, Limit.
type Options struct {
	// Split is "" or "all" for every image, or "train", "val" (also
	// "valid") or "test". A split other than all needs the partition file.
	Split string
	// MinImagesPerIdentity drops identities with fewer images than this in
	// the selected split (0: keep all).
	MinImagesPerIdentity int
	// MaxIdentities keeps only the first this many identities, ordered by
	// the file name of their first image (0: no limit).
	MaxIdentities int
	// Limit keeps only the first this many images (0: no limit).
	Limit int
}

// Layout names the files a Dataset was read from, as paths relative to its
// root; an optional file that is absent is "".
type Layout struct {
	Images     string // image folder, e.g. "img_align_celeba" or "Img/img_align_celeba"
	Attributes string
	Identity   string
	Partition  string
	Landmarks  string
	BBox       string
}

// Dataset is an opened CelebA directory with its selected records. It is
// immutable and safe for concurrent use.
type Dataset struct {
	root    string
	layout  Layout
	total   int
	records []Record
}

// candidate places of each file, flat layout first.
type place struct {
	what  string   // e.g. "attribute file"
	paths []string // relative, slash-separated
	dir   bool
}

var (
	placeImages     = place{"image folder", []string{"img_align_celeba", "Img/img_align_celeba"}, true}
	placeAttributes = place{"attribute file", []string{"list_attr_celeba.txt", "Anno/list_attr_celeba.txt"}, false}
	placeIdentity   = place{"identity file", []string{"identity_CelebA.txt", "Anno/identity_CelebA.txt"}, false}
	placePartition  = place{"partition file", []string{"list_eval_partition.txt", "Eval/list_eval_partition.txt"}, false}
	placeLandmarks  = place{"landmark file", []string{"list_landmarks_align_celeba.txt", "Anno/list_landmarks_align_celeba.txt"}, false}
	placeBBox       = place{"bbox file", []string{"list_bbox_celeba.txt", "Anno/list_bbox_celeba.txt"}, false}
)

// find returns the first candidate of p that exists under root ("" when none
// does). A candidate of the wrong kind (a file where a folder is expected or
// the reverse) is an error.
func find(root string, p place) (string, error) {
	for _, rel := range p.paths {
		full := filepath.Join(root, filepath.FromSlash(rel))
		st, err := os.Stat(full)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("celeba: %s: %w", p.what, err)
		}
		if st.IsDir() != p.dir {
			kind := "a file"
			if p.dir {
				kind = "a folder"
			}
			return "", fmt.Errorf("celeba: %s: want %s as the %s", full, kind, p.what)
		}
		return rel, nil
	}
	return "", nil
}

func missing(root string, p place) error {
	return fmt.Errorf("celeba: no %s under %s: tried %s (flat torchvision/Kaggle layout) and %s (official Google-Drive layout)",
		p.what, root, p.paths[0], p.paths[1])
}

// Open reads the CelebA annotations under root, validates them, and selects
// records by opt. It returns an error when a required part (image folder,
// attribute file, identity file) is missing, naming the file and the layouts
// tried; when any annotation line is malformed, naming file, line and what
// was expected; when an optional file does not cover exactly the images of
// the attribute file; or when opt is invalid. Image files themselves are not
// read here: see Image and Check.
func Open(root string, opt Options) (*Dataset, error) {
	split, err := parseSplit(opt.Split)
	if err != nil {
		return nil, err
	}
	if opt.MinImagesPerIdentity < 0 || opt.MaxIdentities < 0 || opt.Limit < 0 {
		return nil, fmt.Errorf("celeba: Options: MinImagesPerIdentity, MaxIdentities and Limit must be >= 0, got %d, %d, %d",
			opt.MinImagesPerIdentity, opt.MaxIdentities, opt.Limit)
	}
	d := &Dataset{root: root}
	lay := &d.layout
	for _, f := range []struct {
		p        place
		dst      *string
		required bool
	}{
		{placeImages, &lay.Images, true},
		{placeAttributes, &lay.Attributes, true},
		{placeIdentity, &lay.Identity, true},
		{placePartition, &lay.Partition, false},
		{placeLandmarks, &lay.Landmarks, false},
		{placeBBox, &lay.BBox, false},
	} {
		rel, err := find(root, f.p)
		if err != nil {
			return nil, err
		}
		if rel == "" && f.required {
			return nil, missing(root, f.p)
		}
		*f.dst = rel
	}
	if split != Unknown && lay.Partition == "" {
		return nil, fmt.Errorf("celeba: Options.Split %q needs the partition file, but %s has neither %s nor %s",
			opt.Split, root, placePartition.paths[0], placePartition.paths[1])
	}

	var m *master
	if err := d.parse(lay.Attributes, func(path string, f *os.File) (err error) {
		m, err = parseAttributes(path, f)
		return err
	}); err != nil {
		return nil, err
	}
	var ids []int32
	if err := d.parse(lay.Identity, func(path string, f *os.File) (err error) {
		ids, err = parseIdentity(path, f, m)
		return err
	}); err != nil {
		return nil, err
	}
	var parts []Partition
	if lay.Partition != "" {
		if err := d.parse(lay.Partition, func(path string, f *os.File) (err error) {
			parts, err = parsePartition(path, f, m)
			return err
		}); err != nil {
			return nil, err
		}
	}
	var lms [][NumLandmarks][2]float32
	if lay.Landmarks != "" {
		if err := d.parse(lay.Landmarks, func(path string, f *os.File) (err error) {
			lms, err = parseLandmarks(path, f, m)
			return err
		}); err != nil {
			return nil, err
		}
	}
	var boxes [][4]int
	if lay.BBox != "" {
		if err := d.parse(lay.BBox, func(path string, f *os.File) (err error) {
			boxes, err = parseBBox(path, f, m)
			return err
		}); err != nil {
			return nil, err
		}
	}

	all := make([]Record, len(m.files))
	for i, name := range m.files {
		r := Record{File: name, Identity: int(ids[i]), Partition: Unknown, Attributes: m.attrs[i]}
		if parts != nil {
			r.Partition = parts[i]
		}
		if lms != nil {
			r.Landmarks = &lms[i]
		}
		if boxes != nil {
			r.BBox = &boxes[i]
		}
		all[i] = r
	}
	slices.SortFunc(all, func(a, b Record) int { return cmp.Compare(a.File, b.File) })
	d.total = len(all)
	d.records = selectRecords(all, split, opt)
	return d, nil
}

// parse opens rel under the dataset root and hands it to fn with its full path.
func (d *Dataset) parse(rel string, fn func(path string, f *os.File) error) error {
	path := filepath.Join(d.root, filepath.FromSlash(rel))
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("celeba: %w", err)
	}
	defer f.Close()
	return fn(path, f)
}

// parseSplit maps Options.Split to a partition; Unknown means all.
func parseSplit(s string) (Partition, error) {
	switch strings.ToLower(s) {
	case "", "all":
		return Unknown, nil
	case "train":
		return Train, nil
	case "val", "valid", "validation":
		return Val, nil
	case "test":
		return Test, nil
	}
	return Unknown, fmt.Errorf("celeba: Options.Split: want all, train, val or test, got %q", s)
}

// selectRecords applies the filters of opt, in the documented order, to
// records sorted by file name.
func selectRecords(all []Record, split Partition, opt Options) []Record {
	recs := all
	if split != Unknown {
		recs = make([]Record, 0, len(all)/2)
		for _, r := range all {
			if r.Partition == split {
				recs = append(recs, r)
			}
		}
	}
	if opt.MinImagesPerIdentity > 1 {
		n := map[int]int{}
		for _, r := range recs {
			n[r.Identity]++
		}
		recs = slices.DeleteFunc(slices.Clone(recs), func(r Record) bool { return n[r.Identity] < opt.MinImagesPerIdentity })
	}
	if opt.MaxIdentities > 0 {
		keep := map[int]bool{}
		out := recs[:0:0]
		for _, r := range recs {
			if !keep[r.Identity] {
				if len(keep) == opt.MaxIdentities {
					continue
				}
				keep[r.Identity] = true
			}
			out = append(out, r)
		}
		recs = out
	}
	if opt.Limit > 0 && len(recs) > opt.Limit {
		recs = slices.Clone(recs[:opt.Limit]) // release the rest
	}
	return recs
}

// Root returns the folder the dataset was opened from.
func (d *Dataset) Root() string { return d.root }

// Layout returns which files the dataset was read from.
func (d *Dataset) Layout() Layout { return d.layout }

// Total returns the number of images in the annotation files, before the
// filters of Options.
func (d *Dataset) Total() int { return d.total }

// Len returns the number of selected records.
func (d *Dataset) Len() int { return len(d.records) }

// Records returns the selected records sorted by file name. The slice is
// shared with the Dataset: callers must not modify it.
func (d *Dataset) Records() []Record { return d.records }

// Group is the selected records of one identity, sorted by file name.
type Group struct {
	Identity int
	Records  []Record
}

// Groups returns the selected records grouped by identity, identities ordered
// by the file name of their first image. It never fails.
func (d *Dataset) Groups() []Group {
	pos := map[int]int{}
	var out []Group
	for _, r := range d.records {
		i, ok := pos[r.Identity]
		if !ok {
			i = len(out)
			pos[r.Identity] = i
			out = append(out, Group{Identity: r.Identity})
		}
		out[i].Records = append(out[i].Records, r)
	}
	return out
}

// Path returns the path of the record's image file under the dataset root.
// It does not check that the file exists.
func (d *Dataset) Path(r Record) string {
	return filepath.Join(d.root, filepath.FromSlash(d.layout.Images), r.File)
}

// ImageBytes returns the encoded bytes of the record's image and its format,
// "jpeg" or "png", detected from the content. It returns an error naming the
// path when the file is missing (wrapping fs.ErrNotExist), unreadable, or
// neither JPEG nor PNG.
func (d *Dataset) ImageBytes(r Record) ([]byte, string, error) {
	if err := checkFile(r); err != nil {
		return nil, "", err
	}
	return imageio.ReadFile(d.Path(r), d.missing())
}

// checkFile returns an error unless r's file is a plain file name.
func checkFile(r Record) error {
	if !validName([]byte(r.File)) {
		return fmt.Errorf("celeba: record file %q: want a plain file name like 000001.jpg", r.File)
	}
	return nil
}

// missing says, in errors about a missing image, which file listed it.
func (d *Dataset) missing() string {
	return "listed in " + base(d.layout.Attributes) + " but missing on disk"
}

// Image reads and decodes the record's image (JPEG, or PNG for converted
// copies) with the standard library. It returns an error naming the path
// when the file is missing (wrapping fs.ErrNotExist) or does not decode,
// e.g. "ROOT/img_align_celeba/000123.jpg: decode jpeg: unexpected EOF".
func (d *Dataset) Image(r Record) (image.Image, error) {
	if err := checkFile(r); err != nil {
		return nil, err
	}
	return imageio.DecodeFile(d.Path(r), d.missing())
}

// Check verifies that the image file of every selected record exists and is
// a regular file (or a link to one), without decoding it. It returns an error
// naming the image folder, how many images are missing, and the first few.
func (d *Dataset) Check() error {
	dir := filepath.Join(d.root, filepath.FromSlash(d.layout.Images))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("celeba: check images: %w", err)
	}
	present := make(map[string]fs.FileMode, len(entries))
	for _, e := range entries {
		present[e.Name()] = e.Type()
	}
	var bad []string
	nbad := 0
	for _, r := range d.records {
		mode, ok := present[r.File]
		if ok && !mode.IsRegular() {
			st, err := os.Stat(filepath.Join(dir, r.File)) // follow links
			ok = err == nil && st.Mode().IsRegular()
		}
		if !ok {
			nbad++
			if len(bad) < 5 {
				bad = append(bad, r.File)
			}
		}
	}
	if nbad > 0 {
		more := ""
		if nbad > len(bad) {
			more = ", ..."
		}
		return fmt.Errorf("%s: %d of %d images listed in %s are missing or not regular files: %s%s",
			dir, nbad, len(d.records), base(d.layout.Attributes), strings.Join(bad, ", "), more)
	}
	return nil
}
