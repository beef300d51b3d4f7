package stages

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/datasets/synthfaces"
	"github.com/cocoflow/cocoflow/models/judges"
	"github.com/cocoflow/cocoflow/models/judges/tinyjudge"
	"github.com/cocoflow/cocoflow/models/metrics"
	"github.com/parquet-go/parquet-go"
)

// noFaceKind is a face judge for tests: an image whose top-left pixel is pure black has no
// face; any other is embedded as its mean colour (and a constant), normalised.
const noFaceKind = "test-noface"

func init() {
	judges.Faces.Register(noFaceKind, judges.Opener[judges.Face]{
		Open:   func(judges.Spec) (judges.Face, error) { return noFaceJudge{}, nil },
		Digest: func(judges.Spec) (string, error) { return "test-noface", nil },
		Doc:    "tests: no face where the top-left pixel is black",
	})
}

type noFaceJudge struct{}

func (noFaceJudge) Embed(imgs []image.Image) ([][]float32, []bool, error) {
	emb := make([][]float32, len(imgs))
	found := make([]bool, len(imgs))
	for i, img := range imgs {
		b := img.Bounds()
		if r, g, bl, _ := img.At(b.Min.X, b.Min.Y).RGBA(); r == 0 && g == 0 && bl == 0 {
			continue
		}
		var sum [3]float64
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				r, g, bl, _ := img.At(x, y).RGBA()
				sum[0], sum[1], sum[2] = sum[0]+float64(r), sum[1]+float64(g), sum[2]+float64(bl)
			}
		}
		v := []float32{float32(sum[0]), float32(sum[1]), float32(sum[2]), float32(0.2 * (sum[0] + sum[1] + sum[2]))}
		var n float64
		for _, x := range v {
			n += float64(x) * float64(x)
		}
		for k := range v {
			v[k] /= float32(math.Sqrt(n))
		}
		emb[i], found[i] = v, true
	}
	return emb, found, nil
}

func (noFaceJudge) Close() error { return nil }

// externalImages renders ids identities of n synthfaces portraits each, the sample of every
// identity named in black carrying a black top-left pixel.
func externalImages(t *testing.T, ids, n int, black map[[2]int]bool) [][]image.Image {
	t.Helper()
	world, err := synthfaces.New(synthfaces.Config{Seed: 3, Identities: ids, ImagesPerIdentity: n, Size: 32, Classes: []string{"man"}})
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]image.Image, ids)
	for id := range ids {
		for k := range n {
			s, err := world.Render(id, k)
			if err != nil {
				t.Fatal(err)
			}
			img := imageio.ToNRGBA(s.Image)
			if black[[2]int{id, k}] {
				img.Set(0, 0, color.NRGBA{0, 0, 0, 255})
			} else if r, g, b, _ := img.At(0, 0).RGBA(); r == 0 && g == 0 && b == 0 {
				img.Set(0, 0, color.NRGBA{1, 1, 1, 255})
			}
			out[id] = append(out[id], img)
		}
	}
	return out
}

// writeExternalFolder writes imgs in the folder layout ROOT/method/idNN/NNN.png with
// ROOT/prompts.tsv, and returns ROOT.
func writeExternalFolder(t *testing.T, method string, imgs [][]image.Image) string {
	t.Helper()
	root := t.TempDir()
	tsv := "method\tidentity\timage\tsubject\tprompt\n"
	for id, group := range imgs {
		dir := filepath.Join(root, method, fmt.Sprintf("id%02d", id))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for k, img := range group {
			data, err := imageio.PNG(img)
			if err != nil {
				t.Fatal(err)
			}
			name := fmt.Sprintf("%03d.png", k)
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
			tsv += fmt.Sprintf("%s\tid%02d\t%s\tman\ta man is looking at the camera.\n", method, id, name)
		}
	}
	tsv += "other\tid00\t000.png\twoman\ta woman.\n" // another method's line: not read for this one
	if err := os.WriteFile(filepath.Join(root, "prompts.tsv"), []byte(tsv), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestEvaluateScoresAnExternalFolder: a folder of another system's images is scored into its
// own row of the table, beside the dataset row, with the same judges: its Face Sim is the
// tiny judge's within-identity cosine of exactly those images, and the report shows the row,
// its no-face count and the judges in the headers. The same images as Parquet score the same.
func TestEvaluateScoresAnExternalFolder(t *testing.T) {
	imgs := externalImages(t, 2, 3, nil)
	root := writeExternalFolder(t, "storyd", imgs)
	pq := filepath.Join(t.TempDir(), "other.parquet")
	var rows []ExternalImageRow
	for id, group := range imgs {
		for k, img := range group {
			data, _ := imageio.PNG(img)
			rows = append(rows, ExternalImageRow{ID: fmt.Sprintf("%d-%d", id, k), Method: "pq", Prompt: "a man is looking at the camera.",
				Subject: "man", Identity: fmt.Sprint(id), Image: data})
		}
	}
	rows = append(rows, ExternalImageRow{ID: "x", Method: "unrelated", Prompt: "p", Subject: "man", Identity: "0", Image: []byte("not read")})
	if err := parquet.WriteFile(pq, rows); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	cfg := tinyPrep + fmt.Sprintf(`  - id: eval
    uses: evaluate
    inputs: {real: ingest}
    with: {methods: [dataset], subjects: [man], identities_per_subject: 2, samples_per_identity: 2, bootstrap: 20,
           external: {storyd: %q, pq: %q}}
  - id: report
    uses: report
    inputs: {metrics: [eval.metrics]}
`, root, pq)
	if _, err := runConfig(t, dir, cfg); err != nil {
		t.Fatal(err)
	}
	got := map[string]MetricRow{}
	for _, m := range readAll[MetricRow](t, filepath.Join(dir, "p", "eval", "metrics")) {
		got[m.Method+"."+m.Metric] = m
	}
	fj, err := judges.Faces.Open(judges.Spec{Kind: tinyjudge.FaceKind})
	if err != nil {
		t.Fatal(err)
	}
	var groups []metrics.Group
	for _, g := range imgs {
		emb, _, err := fj.Embed(g)
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, emb)
	}
	want := metrics.Similarity(groups)
	for _, method := range []string{"storyd", "pq"} {
		fs, ok := got[method+".face_sim"]
		if !ok || fs.Identities != 2 || fs.Images != 6 || math.Abs(fs.Value-want) > 1e-6 || fs.Judge != "tinyface" {
			t.Errorf("%s face_sim %+v, want %.6f over 2 identities and 6 images", method, fs, want)
		}
		if nf := got[method+".no_face"]; nf.Value != 0 || nf.Images != 6 {
			t.Errorf("%s no_face %+v", method, nf)
		}
		if ct := got[method+".clip_t"]; ct.Judge != "tinyclip, raw cosine" || ct.Images != 6 {
			t.Errorf("%s clip_t %+v", method, ct)
		}
	}
	if a, b := got["storyd.clip_t"], got["pq.clip_t"]; a.Value != b.Value || got["storyd.face_div"].Value != got["pq.face_div"].Value {
		t.Errorf("the same images as a folder and as Parquet score differently: clip_t %.6f and %.6f", a.Value, b.Value)
	}
	if _, ok := got["dataset.face_sim"]; !ok {
		t.Errorf("no dataset row: %v", got)
	}
	md, err := os.ReadFile(filepath.Join(dir, "p", "report", "table1.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"| Face Sim. ↑ (tinyface) |", "| CLIP-T ↑ (tinyclip, raw cosine) |", "| No face (tinyface) |", "| storyd |", "| pq |", " 0 of 6 |"} {
		if !strings.Contains(string(md), s) {
			t.Errorf("table1.md lacks %q:\n%s", s, md)
		}
	}
	for _, r := range readAll[EvalImageRow](t, filepath.Join(dir, "p", "eval", "images")) {
		if r.Method == "storyd" && (r.Seed != -1 || r.Subject != "man" || !strings.HasPrefix(r.Group, "id0")) {
			t.Errorf("external image row %+v", r.ID)
		}
	}
}

// TestEvaluateCountsImagesWithoutAFace: with a face judge that finds no face in some images,
// those are counted in the no_face row and left out of Face Sim and Face Div, which are the
// formulas on the remaining embeddings — not zeros.
func TestEvaluateCountsImagesWithoutAFace(t *testing.T) {
	black := map[[2]int]bool{{0, 1}: true, {1, 0}: true, {1, 2}: true}
	imgs := externalImages(t, 3, 3, black)
	root := writeExternalFolder(t, "ext", imgs)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`name: nf
stages:
  - id: eval
    uses: evaluate
    with: {methods: [], subjects: [man], bootstrap: 0, face_judge: {kind: %s}, external: {ext: %q}}
  - id: report
    uses: report
    inputs: {metrics: [eval.metrics]}
`, noFaceKind, root)
	if _, err := runConfig(t, dir, cfg); err != nil {
		t.Fatal(err)
	}
	got := map[string]MetricRow{}
	for _, m := range readAll[MetricRow](t, filepath.Join(dir, "nf", "eval", "metrics")) {
		got[m.Metric] = m
	}
	var groups []metrics.Group
	for id, g := range imgs {
		var kept []image.Image
		for k, img := range g {
			if !black[[2]int{id, k}] {
				kept = append(kept, img)
			}
		}
		emb, found, _ := noFaceJudge{}.Embed(kept)
		for _, f := range found {
			if !f {
				t.Fatal("test double lost a face")
			}
		}
		groups = append(groups, emb)
	}
	if nf := got["no_face"]; nf.Value != 3 || nf.Images != 9 || nf.Judge != noFaceKind {
		t.Errorf("no_face %+v, want 3 of 9", nf)
	}
	fs, fd := got["face_sim"], got["face_div"]
	if math.Abs(fs.Value-metrics.Similarity(groups)) > 1e-9 || fs.Images != 6 || fs.Identities != 3 {
		t.Errorf("face_sim %+v, want %.6f on the 6 images with a face", fs, metrics.Similarity(groups))
	}
	if math.Abs(fd.Value-metrics.Diversity(groups)) > 1e-9 {
		t.Errorf("face_div %.6f, want %.6f", fd.Value, metrics.Diversity(groups))
	}
	if ct := got["clip_t"]; ct.Images != 9 {
		t.Errorf("clip_t leaves images out: %+v", ct)
	}
	md, err := os.ReadFile(filepath.Join(dir, "nf", "report", "table1.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), " 3 of 9 |") {
		t.Errorf("table1.md lacks the no-face count:\n%s", md)
	}
}

// TestEvaluateExternalErrors: each broken external input is an error naming what and where.
func TestEvaluateExternalErrors(t *testing.T) {
	imgs := externalImages(t, 2, 2, nil)
	cases := []struct {
		name  string
		setup func(root string) string // returns the path to give
		want  []string
	}{
		{"missing folder", func(root string) string { return filepath.Join(root, "nope") }, []string{"external ext", "nope", "no such file"}},
		{"no method folder", func(root string) string { os.RemoveAll(filepath.Join(root, "ext")); return root }, []string{`no folder of method "ext"`}},
		{"corrupt image", func(root string) string {
			os.WriteFile(filepath.Join(root, "ext", "id01", "001.png"), []byte("\x89PNG\r\n\x1a\nbroken"), 0o644)
			return root
		}, []string{filepath.Join("ext", "id01", "001.png")}},
		{"one image", func(root string) string {
			os.Remove(filepath.Join(root, "ext", "id00", "001.png"))
			tsv, _ := os.ReadFile(filepath.Join(root, "prompts.tsv"))
			os.WriteFile(filepath.Join(root, "prompts.tsv"), []byte(strings.Replace(string(tsv), "ext\tid00\t001.png\tman\ta man is looking at the camera.\n", "", 1)), 0o644)
			return root
		}, []string{`identity "id00" has 1 image`, "at least 2"}},
		{"unlisted image", func(root string) string {
			data, _ := os.ReadFile(filepath.Join(root, "ext", "id00", "000.png"))
			os.WriteFile(filepath.Join(root, "ext", "id00", "009.png"), data, 0o644)
			return root
		}, []string{"009.png", "no line for it", "prompts.tsv"}},
		{"listed but missing", func(root string) string { os.Remove(filepath.Join(root, "ext", "id01", "000.png")); return root },
			[]string{filepath.Join("ext", "id01", "000.png"), "missing on disk", "line"}},
		{"no prompts file", func(root string) string { os.Remove(filepath.Join(root, "prompts.tsv")); return root }, []string{"prompts.tsv", "missing", "method, identity, image, subject, prompt"}},
		{"bad header", func(root string) string {
			os.WriteFile(filepath.Join(root, "prompts.tsv"), []byte("file\tprompt\n"), 0o644)
			return root
		}, []string{"prompts.tsv:1", "header"}},
	}
	for _, c := range cases {
		root := writeExternalFolder(t, "ext", imgs)
		p := &evaluateParams{External: map[string]string{"ext": c.setup(root)}}
		_, err := externalItems(p)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: err %v, want it to contain %q", c.name, err, w)
			}
		}
	}
	// A Parquet dataset without the method names the methods it has; one without the schema's
	// columns names the missing column.
	pq := filepath.Join(t.TempDir(), "x.parquet")
	parquet.WriteFile(pq, []ExternalImageRow{{ID: "a", Method: "consistory", Prompt: "p", Subject: "man", Identity: "0", Image: []byte{1}}})
	if _, err := externalItems(&evaluateParams{External: map[string]string{"ext": pq}}); err == nil || !strings.Contains(err.Error(), "consistory") {
		t.Errorf("parquet without the method: %v", err)
	}
	type partial struct {
		ID string `parquet:"id"`
	}
	parquet.WriteFile(pq, []partial{{"a"}})
	if _, err := externalItems(&evaluateParams{External: map[string]string{"ext": pq}}); err == nil || !strings.Contains(err.Error(), `missing column "method"`) {
		t.Errorf("parquet without the schema: %v", err)
	}
}

// TestEvaluateJudgeParams: judge parameters read kind, path and options; the old face_model and
// clip_model stay the tiny judges' folders; contradictions and unknown kinds are errors.
func TestEvaluateJudgeParams(t *testing.T) {
	p := &evaluateParams{CLIPModel: "/m/clip", FaceJudge: map[string]string{"kind": noFaceKind, "path": "/m/buffalo_l", "detector": "scrfd"}}
	j, err := p.judges()
	if err != nil {
		t.Fatal(err)
	}
	if j.face.Kind != noFaceKind || j.face.Path != "/m/buffalo_l" || j.face.Options["detector"] != "scrfd" || len(j.face.Options) != 1 {
		t.Errorf("face spec %+v", j.face)
	}
	if j.clip.Kind != tinyjudge.CLIPKind || j.clip.Path != "/m/clip" || j.sim.Kind != tinyjudge.SubjectKind || j.sim.Path != "/m/clip" {
		t.Errorf("clip %+v, sim %+v", j.clip, j.sim)
	}
	if got := judgeLabel(j.face); got != noFaceKind+" buffalo_l detector=scrfd" {
		t.Errorf("label %q", got)
	}
	if err := j.check(); err != nil {
		t.Error(err)
	}
	for _, c := range []struct {
		p    evaluateParams
		want string
	}{
		{evaluateParams{FaceModel: "/a", FaceJudge: map[string]string{"kind": noFaceKind}}, "face_model is the folder of the tinyface judge"},
		{evaluateParams{CLIPModel: "/a", CLIPJudge: map[string]string{"path": "/b"}}, "both clip_judge.path"},
	} {
		if _, err := c.p.judges(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err %v, want %q", c.p, err, c.want)
		}
	}
	j, _ = (&evaluateParams{DreamSimJudge: map[string]string{"kind": "no-such-judge"}}).judges()
	if err := j.check(); err == nil || !strings.Contains(err.Error(), "dreamsim_judge") || !strings.Contains(err.Error(), "tinyclip-subject") {
		t.Errorf("unknown kind: %v", err)
	}
}

// TestEvaluateFingerprintsExternalImages: the stage's model digests cover an external
// method's files, so changing one image scores the method again.
func TestEvaluateFingerprintsExternalImages(t *testing.T) {
	root := writeExternalFolder(t, "ext", externalImages(t, 2, 2, nil))
	p := &evaluateParams{External: map[string]string{"ext": root}}
	before, err := p.models()
	if err != nil {
		t.Fatal(err)
	}
	if len(before["external:ext"]) != 64 {
		t.Fatalf("models %v", before)
	}
	other, _ := os.ReadFile(filepath.Join(root, "ext", "id01", "000.png"))
	if err := os.WriteFile(filepath.Join(root, "ext", "id00", "001.png"), other, 0o644); err != nil {
		t.Fatal(err)
	}
	after, err := p.models()
	if err != nil {
		t.Fatal(err)
	}
	if after["external:ext"] == before["external:ext"] || after["face"] != before["face"] {
		t.Errorf("digests before %v, after %v", before, after)
	}
	if _, err := (&evaluateParams{External: map[string]string{"ext": filepath.Join(root, "nope")}}).models(); err == nil || !strings.Contains(err.Error(), "external ext") {
		t.Errorf("missing folder: %v", err)
	}
}
