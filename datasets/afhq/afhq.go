// Package afhq reads AFHQ (Animal Faces-HQ, from StarGAN v2): 512x512 animal
// faces in three classes, laid out as
//
//	ROOT/train/{cat,dog,wild}/*.jpg   ROOT/val/{cat,dog,wild}/*.jpg    (AFHQ v1)
//	ROOT/train/{cat,dog,wild}/*.png   ROOT/test/{cat,dog,wild}/*.png   (AFHQ v2)
//
// Records are listed from the folders when the dataset is opened, sorted by
// split, class and file name; images are decoded lazily by Image.
package afhq

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

// Classes are the three AFHQ classes, in record order.
var Classes = [3]string{"cat", "dog", "wild"}

// Splits are the split folders AFHQ uses, in record order: v1 has train and
// val, v2 has train and test.
var Splits = [3]string{"train", "val", "test"}

// Layout describes the expected folder tree, for error messages.
const Layout = "ROOT/{train,val}/{cat,dog,wild}/*.{jpg,png} (AFHQ v1; AFHQ v2 names val test)"

// Record is one image.
type Record struct {
	Split string // "train", "val" or "test": the folder it was found in
	Class string // "cat", "dog" or "wild"
	File  string // file name inside ROOT/Split/Class, e.g. "flickr_cat_000002.jpg"
}

// Options selects a subset. The zero value selects every image of every split
// folder present. Filters apply in this order: Split, Classes, MaxPerClass,
// Limit.
type Options struct {
	// Split is "" or "all" for every split folder present, or "train",
	// "val" or "test"; a named split must exist as a folder.
	Split string
	// Classes keeps only these classes (nil or empty: all three).
	Classes []string
	// MaxPerClass keeps at most this many images of each split and class,
	// the first by file name (0: no limit).
	MaxPerClass int
	// Limit keeps only the first this many records overall (0: no limit).
	Limit int
}

// Dataset is an opened AFHQ folder. It is immutable and safe for concurrent use.
type Dataset struct {
	root    string
	records []Record
}

// isImage reports whether name has an image extension AFHQ uses.
func isImage(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jpg", ".jpeg", ".png":
		return true
	}
	return false
}

// Open lists the AFHQ images under root selected by opt. Hidden files and
// files without a .jpg, .jpeg or .png extension are ignored. It returns an
// error when root or a selected split or class folder is missing (naming the
// folder and the expected layout), when a class folder holds no image, or when
// opt is invalid.
func Open(root string, opt Options) (*Dataset, error) {
	if opt.MaxPerClass < 0 || opt.Limit < 0 {
		return nil, fmt.Errorf("afhq: Options: MaxPerClass and Limit must be >= 0, got %d, %d", opt.MaxPerClass, opt.Limit)
	}
	classes := Classes[:]
	if len(opt.Classes) > 0 {
		classes = nil
		for _, c := range opt.Classes {
			if !slices.Contains(Classes[:], c) {
				return nil, fmt.Errorf("afhq: Options.Classes: want cat, dog or wild, got %q", c)
			}
			if !slices.Contains(classes, c) {
				classes = append(classes, c)
			}
		}
		slices.SortFunc(classes, func(a, b string) int {
			return cmp.Compare(slices.Index(Classes[:], a), slices.Index(Classes[:], b))
		})
	}
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("afhq: %s is not a folder: want %s", root, Layout)
	}
	present := func(split string) bool {
		st, err := os.Stat(filepath.Join(root, split))
		return err == nil && st.IsDir()
	}
	var splits []string
	switch s := strings.ToLower(opt.Split); s {
	case "", "all":
		for _, sp := range Splits {
			if present(sp) {
				splits = append(splits, sp)
			}
		}
		if len(splits) == 0 {
			return nil, fmt.Errorf("afhq: %s has no train, val or test folder: want %s", root, Layout)
		}
	case "train", "val", "test":
		if !present(s) {
			hint := ""
			if s == "val" && present("test") {
				hint = `; it has test/, as AFHQ v2 does: use Split "test"`
			} else if s == "test" && present("val") {
				hint = `; it has val/, as AFHQ v1 does: use Split "val"`
			}
			return nil, fmt.Errorf("afhq: missing folder %s: want %s%s", filepath.Join(root, s), Layout, hint)
		}
		splits = []string{s}
	default:
		return nil, fmt.Errorf("afhq: Options.Split: want all, train, val or test, got %q", opt.Split)
	}

	d := &Dataset{root: root}
	for _, sp := range splits {
		for _, c := range classes {
			dir := filepath.Join(root, sp, c)
			entries, err := os.ReadDir(dir)
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("afhq: missing folder %s: want %s", dir, Layout)
			}
			if err != nil {
				return nil, fmt.Errorf("afhq: %w", err)
			}
			var names []string
			for _, e := range entries {
				n := e.Name()
				if strings.HasPrefix(n, ".") || e.IsDir() || !isImage(n) {
					continue
				}
				names = append(names, n)
			}
			if len(names) == 0 {
				return nil, fmt.Errorf("afhq: %s holds no .jpg or .png image: want %s", dir, Layout)
			}
			slices.Sort(names) // ReadDir sorts already; keep it explicit
			if opt.MaxPerClass > 0 && len(names) > opt.MaxPerClass {
				names = names[:opt.MaxPerClass]
			}
			for _, n := range names {
				d.records = append(d.records, Record{Split: sp, Class: c, File: n})
			}
		}
	}
	if opt.Limit > 0 && len(d.records) > opt.Limit {
		d.records = slices.Clone(d.records[:opt.Limit])
	}
	return d, nil
}

// Root returns the folder the dataset was opened from.
func (d *Dataset) Root() string { return d.root }

// Len returns the number of selected records.
func (d *Dataset) Len() int { return len(d.records) }

// Records returns the selected records sorted by split, class (cat, dog,
// wild) and file name. The slice is shared: callers must not modify it.
func (d *Dataset) Records() []Record { return d.records }

// Path returns the path of the record's image file. It does not check that
// the file exists.
func (d *Dataset) Path(r Record) string {
	return filepath.Join(d.root, r.Split, r.Class, r.File)
}

// ImageBytes returns the encoded bytes of the record's image and its format,
// "jpeg" or "png", detected from the content. It returns an error naming the
// path when the record is not a plain split/class/file triple, when the file is
// missing (wrapping fs.ErrNotExist) or unreadable, or when it is neither JPEG
// nor PNG.
func (d *Dataset) ImageBytes(r Record) ([]byte, string, error) {
	if err := checkRecord(r); err != nil {
		return nil, "", err
	}
	return imageio.ReadFile(d.Path(r), "missing on disk")
}

// checkRecord returns an error unless r is a plain split/class/file triple.
func checkRecord(r Record) error {
	if !slices.Contains(Splits[:], r.Split) || !slices.Contains(Classes[:], r.Class) ||
		r.File == "" || r.File == "." || r.File == ".." || strings.ContainsAny(r.File, "/\\\x00") {
		return fmt.Errorf("afhq: record %s/%s/%s: want split train, val or test, class cat, dog or wild, and a plain file name", r.Split, r.Class, r.File)
	}
	return nil
}

// Image reads and decodes the record's image (JPEG or PNG) with the standard
// library. It returns an error naming the path when the file is missing or
// does not decode, e.g. "ROOT/train/cat/x.jpg: decode jpeg: unexpected EOF".
func (d *Dataset) Image(r Record) (image.Image, error) {
	if err := checkRecord(r); err != nil {
		return nil, err
	}
	return imageio.DecodeFile(d.Path(r), "missing on disk")
}
