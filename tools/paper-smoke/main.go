// Command paper-smoke holds the two stand-ins tools/paper-smoke.sh needs to run the paper
// configs on a machine without CelebA or a GPU:
//
//	paper-smoke celeba -out DIR [-identities 4] [-images 3] [-seed 1]
//	    writes synthfaces renders in CelebA's official layout: img_align_celeba/NNNNNN.jpg
//	    (178x218 JPEG, the face centred as in the aligned set), list_attr_celeba.txt (the 40
//	    attributes, Male from the class, Smiling from the expression), identity_CelebA.txt and
//	    list_landmarks_align_celeba.txt (CelebA's mean aligned landmarks, jittered).
//	paper-smoke fake-llava [-addr 127.0.0.1:0] [-url-file FILE]
//	    serves a FAKE OpenAI-compatible chat-completions API on addr and writes its base URL
//	    (http://HOST:PORT/v1) to FILE. It does not look at images: it answers from the request
//	    (the concept word the instruction names, the image bytes' hash and the sampling seed),
//	    deterministically, and leaves the concept word out of every fifth sample so that the
//	    captioner's retry is exercised. It proves the wiring, never caption quality.
//	paper-smoke report -out FILE -runs WORKDIR -models [LABEL=]DIR... [-tables REPORT_DIR]
//	    writes the smoke's report: that it proves the wiring and not the numbers, every model
//	    file under the -models folders (symlinks followed) with its size and SHA-256, the model
//	    digests each stage's run manifest recorded by role, and the tables.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/disintegration/imaging"

	"github.com/cocoflow/cocoflow/datasets/celeba"
	"github.com/cocoflow/cocoflow/datasets/synthfaces"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: paper-smoke celeba|fake-llava [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "celeba":
		err = celebaCmd(os.Args[2:])
	case "fake-llava":
		err = fakeLLaVACmd(os.Args[2:])
	case "report":
		err = reportCmd(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (celeba, fake-llava, report)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "paper-smoke:", err)
		os.Exit(1)
	}
}

// CelebA's aligned images are 178x218; its five landmarks sit near these points in every image.
const celebaW, celebaH = 178, 218

var meanLandmarks = [10]int{69, 111, 108, 111, 88, 135, 72, 152, 105, 152}

func celebaCmd(args []string) error {
	fs := flag.NewFlagSet("celeba", flag.ContinueOnError)
	out := fs.String("out", "", "folder to write the CelebA layout into")
	ids := fs.Int("identities", 4, "identities")
	per := fs.Int("images", 3, "images per identity")
	seed := fs.Uint64("seed", 1, "synthfaces world seed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("celeba: -out is required")
	}
	w, err := synthfaces.New(synthfaces.Config{Seed: *seed, Identities: *ids, ImagesPerIdentity: *per, Size: 128, Classes: []string{"man", "woman"}})
	if err != nil {
		return err
	}
	imgDir := filepath.Join(*out, "img_align_celeba")
	if err := os.MkdirAll(imgDir, 0o755); err != nil {
		return err
	}
	n := w.Len()
	var attr, idf, lms strings.Builder
	fmt.Fprintf(&attr, "%d\n%s\n", n, strings.Join(celeba.AttributeNames[:], " "))
	fmt.Fprintf(&lms, "%d\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y\n", n)
	for i := range n {
		s, err := w.At(i)
		if err != nil {
			return err
		}
		name := fmt.Sprintf("%06d.jpg", i+1)
		// The render, scaled to the aligned set's width, centred on a 178x218 canvas.
		face := imaging.Resize(s.Image, celebaW, celebaW, imaging.Lanczos)
		canvas := image.NewNRGBA(image.Rect(0, 0, celebaW, celebaH))
		draw.Draw(canvas, canvas.Bounds(), image.NewUniform(s.Image.At(0, 0)), image.Point{}, draw.Src)
		draw.Draw(canvas, face.Bounds().Add(image.Pt(0, (celebaH-celebaW)/2)), face, image.Point{}, draw.Src)
		var b bytes.Buffer
		if err := jpeg.Encode(&b, canvas, &jpeg.Options{Quality: 90}); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(imgDir, name), b.Bytes(), 0o644); err != nil {
			return err
		}
		attr.WriteString(name)
		for _, a := range celeba.AttributeNames {
			v := -1
			switch {
			case a == "Male" && (s.Class == "man" || s.Class == "boy"),
				a == "Smiling" && strings.Contains(s.Attributes["expression"], "smil"),
				a == "Young" && (s.Class == "boy" || s.Class == "girl"):
				v = 1
			}
			fmt.Fprintf(&attr, " %2d", v)
		}
		attr.WriteString("\n")
		fmt.Fprintf(&idf, "%s %d\n", name, s.Identity+1)
		lms.WriteString(name)
		for k, v := range meanLandmarks {
			fmt.Fprintf(&lms, " %d", v+(i*7+k*3)%5-2)
		}
		lms.WriteString("\n")
	}
	for file, text := range map[string]string{
		"list_attr_celeba.txt":            attr.String(),
		"identity_CelebA.txt":             idf.String(),
		"list_landmarks_align_celeba.txt": lms.String(),
	} {
		if err := os.WriteFile(filepath.Join(*out, file), []byte(text), 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("paper-smoke celeba: %d synthfaces renders of %d identities in CelebA's layout in %s\n", n, *ids, *out)
	return nil
}

// conceptInPrompt finds the concept word an instruction names: `"a man"` or `word "woman"`.
var conceptInPrompt = regexp.MustCompile(`"(?:a |an )?(man|woman|boy|girl|person|cat|dog)"`)

var scenes = []string{"in front of a plain wall", "in a sunny park", "on a city street", "in a bright studio", "at the beach", "in a living room"}
var looks = []string{"with short dark hair", "with long blond hair", "smiling softly", "wearing a grey sweater", "with a calm expression", "wearing glasses"}

func fakeLLaVACmd(args []string) error {
	fs := flag.NewFlagSet("fake-llava", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on")
	urlFile := fs.String("url-file", "", "write the base URL here once listening")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String() + "/v1"
	if *urlFile != "" {
		if err := os.WriteFile(*urlFile+".tmp", []byte(base+"\n"), 0o644); err != nil {
			return err
		}
		if err := os.Rename(*urlFile+".tmp", *urlFile); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "paper-smoke fake-llava: a FAKE OpenAI-compatible server (no model, it does not look at images) at %s\n", base)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", fakeCompletion)
	return http.Serve(ln, mux)
}

type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Content []struct {
			Type     string `json:"type"`
			Text     string `json:"text"`
			ImageURL *struct {
				URL string `json:"url"`
			} `json:"image_url"`
		} `json:"content"`
	} `json:"messages"`
	Seed uint64 `json:"seed"`
}

func fakeCompletion(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Messages) == 0 {
		http.Error(w, `{"error":{"message":"want a chat completion request"}}`, http.StatusBadRequest)
		return
	}
	var prompt, img string
	for _, c := range req.Messages[0].Content {
		switch {
		case c.Type == "text":
			prompt = c.Text
		case c.Type == "image_url" && c.ImageURL != nil:
			img = c.ImageURL.URL
		}
	}
	if img == "" || !strings.HasPrefix(img, "data:image/") {
		http.Error(w, `{"error":{"message":"want an image_url data URI"}}`, http.StatusBadRequest)
		return
	}
	concept := "person"
	if m := conceptInPrompt.FindStringSubmatch(prompt); m != nil {
		concept = m[1]
	}
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%d", img, prompt, req.Seed)))
	k := binary.LittleEndian.Uint64(h[:8])
	text := fmt.Sprintf("A %s %s %s.", concept, looks[k%uint64(len(looks))], scenes[(k/7)%uint64(len(scenes))])
	if k%5 == 0 {
		text = "A photo " + scenes[(k/7)%uint64(len(scenes))] + "." // no concept word: the captioner asks again
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"id": "chatcmpl-fake", "object": "chat.completion", "model": req.Model,
		"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": text}}},
	})
}

// repeated is a flag that may be given several times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(s string) error { *r = append(*r, s); return nil }

func reportCmd(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	out := fs.String("out", "", "report file to write")
	runs := fs.String("runs", "", "the smoke's workdir (runs/<run>/_run.json)")
	tables := fs.String("tables", "", "the report stage's folder (table1.md, table2.md)")
	var models, notes repeated
	fs.Var(&notes, "note", "a line for the report's header (repeatable)")
	fs.Var(&models, "models", "a model folder whose files are listed, as DIR or LABEL=DIR (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || *runs == "" {
		return errors.New("report: -out and -runs are required")
	}
	var b strings.Builder
	b.WriteString("# Paper smoke\n\n")
	b.WriteString("**This run proves the wiring, not the numbers.** The paper's configs ran end to end " +
		"(prep, train, eval) through ONNX Runtime and GoMLX on random-weight signature fixtures, " +
		"synthfaces renders in CelebA's layout and a fake LLaVA server; every number below is " +
		"meaningless as a result.\n\n")
	for _, n := range notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	if len(notes) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("## Model files used\n\n| file | bytes | sha256 |\n|---|---:|---|\n")
	for _, arg := range models {
		label, root, ok := strings.Cut(arg, "=")
		if !ok {
			label, root = filepath.Clean(arg), arg
		}
		files, err := listFiles(root, label)
		if err != nil {
			return err
		}
		for _, f := range files {
			sum, n, err := sha256File(f.path)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "| %s | %d | %s |\n", f.name, n, sum)
		}
	}
	b.WriteString("\n## Model digests recorded by each stage (run manifests)\n\n| run | stage | role | digest |\n|---|---|---|---|\n")
	manifests, _ := filepath.Glob(filepath.Join(*runs, "*", "_run.json"))
	for _, m := range manifests {
		data, err := os.ReadFile(m)
		if err != nil {
			return err
		}
		var rm struct {
			Run    string `json:"run"`
			Stages []struct {
				ID     string            `json:"id"`
				Models map[string]string `json:"models"`
			} `json:"stages"`
		}
		if err := json.Unmarshal(data, &rm); err != nil {
			return fmt.Errorf("%s: %w", m, err)
		}
		for _, st := range rm.Stages {
			roles := make([]string, 0, len(st.Models))
			for r := range st.Models {
				roles = append(roles, r)
			}
			sort.Strings(roles)
			for _, r := range roles {
				fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", rm.Run, st.ID, r, st.Models[r])
			}
		}
	}
	if *tables != "" {
		for _, t := range []string{"table1.md", "table2.md"} {
			data, err := os.ReadFile(filepath.Join(*tables, t))
			if err != nil {
				return fmt.Errorf("report: %w", err)
			}
			fmt.Fprintf(&b, "\n## %s (wiring only; the numbers mean nothing)\n\n%s\n", t, strings.TrimSpace(string(data)))
		}
	}
	return os.WriteFile(*out, []byte(b.String()), 0o644)
}

type modelFile struct{ name, path string }

// listFiles returns the regular files under root, following symlinked folders, named as
// label plus their path inside root.
func listFiles(root, label string) ([]modelFile, error) {
	var out []modelFile
	var walk func(dir, name string) error
	walk = func(dir, name string) error {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			p := filepath.Join(dir, e.Name())
			fi, err := os.Stat(p) // follows links
			if err != nil {
				return err
			}
			n := name + "/" + e.Name()
			if fi.IsDir() {
				if err := walk(p, n); err != nil {
					return err
				}
			} else if fi.Mode().IsRegular() {
				out = append(out, modelFile{n, p})
			}
		}
		return nil
	}
	err := walk(root, label)
	return out, err
}

func sha256File(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
