package stages

// External methods' images (evaluate's external parameter): other systems' outputs, read from
// a Parquet dataset or a plain folder, scored with exactly the protocol of evaluate's own rows.

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/pipeline"
)

// ExternalImageRow is the schema of an external method's Parquet dataset: one generated image
// a row, every file *.parquet of the folder (or the one file named). An identity (a group of
// images meant to show one subject; ConsiStory's or 1Prompt1Story's story, StoryDiffusion's
// character) needs at least two images.
type ExternalImageRow struct {
	ID       string `parquet:"id"`       // unique within the method; images of an identity are taken in id order
	Method   string `parquet:"method"`   // the system that made it (the external entry's name selects it)
	Prompt   string `parquet:"prompt"`   // the prompt it was generated from (CLIP-T)
	Subject  string `parquet:"subject"`  // the subject word (man, woman, ...), as in the prompt sets
	Identity string `parquet:"identity"` // the identity (group) it belongs to
	Image    []byte `parquet:"image"`    // PNG or JPEG
}

// promptsFile is the prompts file of the folder layout, tab-separated with a header line:
//
//	method	identity	image	subject	prompt
//	storydiffusion	id00	000.png	man	a man is looking at the camera.
//
// one line per image METHOD/IDENTITY/IMAGE under the folder.
const promptsFile = "prompts.tsv"

var promptsColumns = []string{"method", "identity", "image", "subject", "prompt"}

// externalItems reads every external entry of p, in name order, as evaluation items: only
// identities of the evaluated subjects when p.Subjects is set.
func externalItems(p *evaluateParams) ([]evalItem, error) {
	var items []evalItem
	for _, name := range slices.Sorted(maps.Keys(p.External)) {
		path := p.External[name]
		rows, err := readExternal(name, path)
		if err != nil {
			return nil, fmt.Errorf("external %s: %w", name, err)
		}
		its, err := externalGroups(name, path, rows, p.Subjects)
		if err != nil {
			return nil, fmt.Errorf("external %s: %w", name, err)
		}
		items = append(items, its...)
	}
	return items, nil
}

// externalImage is one image of an external method with where it comes from.
type externalImage struct {
	ExternalImageRow
	source string
}

// readExternal reads method's images from path: a Parquet file, a folder of Parquet files, or
// the folder layout path/method/IDENTITY/NNN.png with path/prompts.tsv.
func readExternal(method, path string) ([]externalImage, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err // names the path
	}
	if !st.IsDir() {
		return readExternalParquet(method, []string{path})
	}
	files, err := filepath.Glob(filepath.Join(path, "*.parquet"))
	if err != nil {
		return nil, err
	}
	if len(files) > 0 {
		return readExternalParquet(method, files)
	}
	return readExternalFolder(method, path)
}

func readExternalParquet(method string, files []string) ([]externalImage, error) {
	slices.Sort(files)
	var out []externalImage
	others := map[string]bool{}
	for _, f := range files {
		rows, err := pipeline.ReadFile[ExternalImageRow](f)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			if r.Method != method {
				others[r.Method] = true
				continue
			}
			out = append(out, externalImage{ExternalImageRow: r, source: fmt.Sprintf("%s: image %s", f, r.ID)})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no images of method %q in %s (methods there: %s)", method, strings.Join(files, ", "),
			strings.Join(slices.Sorted(maps.Keys(others)), ", "))
	}
	return out, nil
}

func readExternalFolder(method, root string) ([]externalImage, error) {
	dir := filepath.Join(root, method)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%s: no folder of method %q (want %s/IDENTITY/NNN.png, or Parquet files in %s)", dir, method, dir, root)
	}
	listed, err := readPromptsFile(filepath.Join(root, promptsFile), method)
	if err != nil {
		return nil, err
	}
	var out []externalImage
	seen := map[string]bool{}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) != 2 {
			return fmt.Errorf("%s: not in the layout %s/IDENTITY/NNN.png", path, dir)
		}
		key := parts[0] + "/" + parts[1]
		line, ok := listed[key]
		if !ok {
			return fmt.Errorf("%s: no line for it in %s (method %s, identity %s, image %s)", path, filepath.Join(root, promptsFile), method, parts[0], parts[1])
		}
		data, _, err := imageio.ReadFile(path, "listed but missing")
		if err != nil {
			return err
		}
		seen[key] = true
		out = append(out, externalImage{ExternalImageRow: ExternalImageRow{ID: key, Method: method, Prompt: line.prompt,
			Subject: line.subject, Identity: parts[0], Image: data}, source: path})
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, key := range slices.Sorted(maps.Keys(listed)) {
		if !seen[key] {
			return nil, fmt.Errorf("%s: listed in %s (line %d) but missing on disk", filepath.Join(dir, key), filepath.Join(root, promptsFile), listed[key].line)
		}
	}
	return out, nil
}

type promptLine struct {
	subject, prompt string
	line            int
}

// readPromptsFile reads the lines of method from a prompts.tsv, keyed IDENTITY/IMAGE.
func readPromptsFile(path, method string) (map[string]promptLine, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: missing: the folder layout needs a prompts file with the columns %s", path, strings.Join(promptsColumns, ", "))
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	out := map[string]promptLine{}
	n := 0
	for sc.Scan() {
		n++
		text := strings.TrimRight(sc.Text(), "\r")
		if n == 1 {
			if got := strings.Split(text, "\t"); !slices.Equal(got, promptsColumns) {
				return nil, fmt.Errorf("%s:1: header %q, want the tab-separated columns %s", path, text, strings.Join(promptsColumns, ", "))
			}
			continue
		}
		if strings.TrimSpace(text) == "" {
			continue
		}
		cols := strings.Split(text, "\t")
		if len(cols) != len(promptsColumns) {
			return nil, fmt.Errorf("%s:%d: %d columns, want %d (%s)", path, n, len(cols), len(promptsColumns), strings.Join(promptsColumns, ", "))
		}
		if cols[0] != method {
			continue
		}
		for i, c := range cols {
			if c == "" {
				return nil, fmt.Errorf("%s:%d: empty %s", path, n, promptsColumns[i])
			}
		}
		key := cols[1] + "/" + cols[2]
		if prev, dup := out[key]; dup {
			return nil, fmt.Errorf("%s:%d: %s/%s listed again (first on line %d)", path, n, method, key, prev.line)
		}
		out[key] = promptLine{subject: cols[3], prompt: cols[4], line: n}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// externalGroups checks and orders one method's images: identities in name order, images in
// id order, each decoded once here so that a corrupt image is named before anything runs.
func externalGroups(method, path string, rows []externalImage, subjects []string) ([]evalItem, error) {
	byID := map[string][]externalImage{}
	for _, r := range rows {
		if r.Identity == "" || r.Subject == "" || r.Prompt == "" {
			return nil, fmt.Errorf("%s: empty identity, subject or prompt", r.source)
		}
		if len(subjects) > 0 && !slices.Contains(subjects, r.Subject) {
			continue
		}
		byID[r.Identity] = append(byID[r.Identity], r)
	}
	if len(byID) == 0 {
		return nil, fmt.Errorf("%s: no images of the subjects %v", path, subjects)
	}
	var items []evalItem
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		imgs := byID[id]
		if len(imgs) < 2 {
			return nil, fmt.Errorf("%s: identity %q has %d image (%s); Face Sim needs at least 2 per identity", path, id, len(imgs), imgs[0].source)
		}
		slices.SortFunc(imgs, func(a, b externalImage) int { return strings.Compare(a.ID, b.ID) })
		for j, im := range imgs {
			if j > 0 && im.ID == imgs[j-1].ID {
				return nil, fmt.Errorf("%s: id %q appears twice", path, im.ID)
			}
			if _, err := imageio.Decode(im.Image); err != nil {
				return nil, fmt.Errorf("%s: %w", im.source, err)
			}
			items = append(items, evalItem{EvalImageRow: EvalImageRow{
				Method: method, Subject: im.Subject, Group: id, Sample: int32(j), Prompt: im.Prompt, Seed: -1,
			}, real: im.Image, source: im.source})
		}
	}
	return items, nil
}

// externalDigest is the digest of every file under path (or of the file path), so that the
// stage scores an external method again when its images or prompts change: they are not a
// pipeline input, whose content the reuse key would see.
func externalDigest(path string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		fh := sha256.New()
		if _, err := io.Copy(fh, f); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		rel, _ := filepath.Rel(path, p)
		fmt.Fprintf(h, "%s %x\n", filepath.ToSlash(rel), fh.Sum(nil))
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
