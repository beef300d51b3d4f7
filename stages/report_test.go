package stages

import (
	"cmp"
	"context"
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/pipeline"
)

// test-metrics writes a fixed set of MetricRow and EvalImageRow rows, chosen by its fixture
// parameter, standing in for evaluate stages.

type testMetricsParams struct {
	Fixture string `param:"fixture" default:"a" enum:"a,b,dup" doc:"which rows to write"`
}

var nan = math.NaN()

var reportFixtures = map[string][]MetricRow{
	// Methods in the order dataset, cocoins (not alphabetical): the report must keep it, and the
	// paper's column order, not the rows'. cocoins has no clip_t.
	"a": {
		{Table: "table1", Method: "dataset", Metric: "clip_t", Value: 0.2994, Lo: 0.29, Hi: 0.31, Identities: 4, Images: 16},
		{Table: "table1", Method: "dataset", Metric: "face_sim", Value: 0.5904, Lo: 0.57, Hi: 0.61, Identities: 4, Images: 16},
		{Table: "table1", Method: "dataset", Metric: "face_div", Value: 0.99216, Lo: 0.98, Hi: 0.999, Identities: 4, Images: 16},
		{Table: "table1", Method: "cocoins", Metric: "face_sim", Value: 0.6, Lo: 0.571, Hi: 0.628, Identities: 5, Images: 20},
		{Table: "table1", Method: "cocoins", Metric: "face_div", Value: 0.7991, Lo: 0.75, Hi: 0.85, Identities: 5, Images: 20},
		{Table: "table2", Method: "cocoins", Metric: "dreamsim", Value: 0.3881, Lo: 0.35, Hi: 0.42, Identities: 5, Images: 25},
		{Table: "table2", Method: "cocoins", Metric: "face_sim", Value: 0.2561, Lo: 0.2, Hi: 0.3, Identities: 5, Images: 25},
		{Table: "table2", Method: "cocoins", Metric: "face_div", Value: 0.847, Lo: 0.8, Hi: 0.9, Identities: 5, Images: 25},
		{Table: "table2", Method: "cocoins", Metric: "clip_t", Value: 0.29, Lo: 0.28, Hi: 0.3, Identities: 5, Images: 25},
	},
	// no_code without bootstrap intervals.
	"b": {
		{Table: "table1", Method: "no_code", Metric: "face_sim", Value: 0.1234, Lo: nan, Hi: nan, Identities: 5, Images: 20},
		{Table: "table1", Method: "no_code", Metric: "face_div", Value: 0.4571, Lo: nan, Hi: nan, Identities: 5, Images: 20},
		{Table: "table1", Method: "no_code", Metric: "clip_t", Value: 0.2, Lo: nan, Hi: nan, Identities: 5, Images: 20},
	},
	"dup": {
		{Table: "table1", Method: "cocoins", Metric: "face_sim", Value: 0.5, Lo: nan, Hi: nan},
	},
}

// Fixture "a" images: table1/cocoins identities g3, g0, g4, g1, g2 (first appearance in that
// order), 7 samples each written out of order, 8x8 solid colours encoding identity and sample;
// and two multi-subject identities with 2 samples.
var (
	fixtureGroups  = []int{3, 0, 4, 1, 2}
	fixtureSamples = []int{6, 0, 5, 1, 4, 2, 3}
)

func fixtureColor(group, sample int) color.NRGBA {
	return color.NRGBA{uint8(10 + 40*group), uint8(10 + 30*sample), 200, 255}
}

func fixtureImages() ([]EvalImageRow, error) {
	var err error
	solid := func(c color.NRGBA) []byte {
		img := image.NewNRGBA(image.Rect(0, 0, 8, 8))
		for i := 0; i < len(img.Pix); i += 4 {
			img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, c.A
		}
		data, e := imageio.PNG(img)
		err = cmp.Or(err, e)
		return data
	}
	var rows []EvalImageRow
	for _, s := range fixtureSamples {
		for _, g := range fixtureGroups {
			rows = append(rows, EvalImageRow{ID: fmt.Sprintf("g%d-%d", g, s), Table: "table1", Method: "cocoins", Subject: "man",
				Group: fmt.Sprintf("g%d", g), Sample: int32(s), Prompt: "a man", Seed: int64(s), Image: solid(fixtureColor(g, s))})
		}
	}
	for g := range 2 {
		for s := 1; s >= 0; s-- { // out of sample order, and too few to be pruned
			rows = append(rows, EvalImageRow{ID: fmt.Sprintf("m%d-%d", g, s), Table: "table2", Method: "cocoins", Subject: "man+woman",
				Group: fmt.Sprintf("m%d", g), Sample: int32(s), Prompt: "a man and a woman walking along a beach at sunset",
				Image: solid(fixtureColor(g, s))})
		}
	}
	return rows, err
}

func init() {
	pipeline.Register(pipeline.Spec[testMetricsParams]{
		Name: "test-metrics", Version: "1", Doc: "fixed evaluate-like rows (tests)",
		Outputs: []pipeline.Port{
			{Name: "metrics", Schema: MetricRow{}},
			{Name: "images", Schema: EvalImageRow{}},
		},
		Run: func(ctx context.Context, job *pipeline.Job, p *testMetricsParams) error {
			if err := pipeline.WriteRows(job, job.Output("metrics"), reportFixtures[p.Fixture], 4); err != nil {
				return err
			}
			var imgs []EvalImageRow
			if p.Fixture == "a" {
				var err error
				if imgs, err = fixtureImages(); err != nil {
					return err
				}
			}
			return pipeline.WriteRows(job, job.Output("images"), imgs, 10)
		},
	})
}

func reportConfig(metrics, images string) string {
	cfg := `name: r
stages:
  - {id: a, uses: test-metrics, with: {fixture: a}}
  - {id: b, uses: test-metrics, with: {fixture: b}}
  - {id: dup, uses: test-metrics, with: {fixture: dup}}
  - id: report
    uses: report
    with: {sheet_identities: 3, sheet_samples: 3, scale: 2}
    inputs:
      metrics: ` + metrics + "\n"
	if images != "" {
		cfg += "      images: " + images + "\n"
	}
	return cfg
}

// sheetLayout is chart.Sheet's layout for cells of 8x8 images at scale 2 with captions of
// capLines lines (wrapped at 8 characters), row labels of two characters, and a title: the
// sheet's size for rows x cols cells, and the centre of cell (r, c)'s image.
func sheetLayout(rows, cols, capLines int) (size image.Point, centre func(r, c int) image.Point) {
	const gap, labelW, titleH = 6, 8*2 + 12, 24
	cellW := max(8*2, 8*8) + gap
	cellH := 8*2 + 16*capLines + gap
	return image.Pt(labelW+cols*cellW+gap, titleH+rows*cellH+gap), func(r, c int) image.Point {
		return image.Pt(labelW+gap+c*cellW+8, titleH+gap+r*cellH+8)
	}
}

func readText(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestReportWritesTablesAndFigures(t *testing.T) {
	dir := t.TempDir()
	if _, err := runConfig(t, dir, reportConfig("[a.metrics, b.metrics]", "[a.images]")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "r", "report")

	if got, want := readText(t, filepath.Join(out, "table1.csv")), "method,face_sim,face_div,clip_t\n"+
		"dataset,0.590,0.992,0.299\n"+
		"cocoins,0.600,0.799,\n"+
		"no_code,0.123,0.457,0.200\n"; got != want {
		t.Errorf("table1.csv:\n%s\nwant:\n%s", got, want)
	}
	if got, want := readText(t, filepath.Join(out, "table2.csv")), "method,face_sim,face_div,clip_t,dreamsim\n"+
		"cocoins,0.256,0.847,0.290,0.388\n"; got != want {
		t.Errorf("table2.csv:\n%s\nwant:\n%s", got, want)
	}
	md := readText(t, filepath.Join(out, "table1.md"))
	for _, want := range []string{
		"Table 1", "Portraits", "| Method | Face Sim. ↑ | Face Div. ↑ | CLIP-T ↑ | Identities | Images |",
		"| cocoins | 0.600 [0.571, 0.628] | 0.799 [0.750, 0.850] | — | 5 | 20 |",
		"| no_code | 0.123 | 0.457 | 0.200 | 5 | 20 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("table1.md lacks %q:\n%s", want, md)
		}
	}
	if md := readText(t, filepath.Join(out, "table2.md")); !strings.Contains(md, "DreamSim ↑") || !strings.Contains(md, "Scenes") {
		t.Errorf("table2.md lacks the DreamSim column or its caption:\n%s", md)
	}
	page := readText(t, filepath.Join(out, "report.md"))
	for _, want := range []string{"## table1", "## table2", "(table1.csv)", "![table1: cocoins](figure_table1_cocoins.png)", "(figure_multi_cocoins.png)", "multi: cocoins"} {
		if !strings.Contains(page, want) {
			t.Errorf("report.md lacks %q:\n%s", want, page)
		}
	}
	if i, j := strings.Index(page, "## table1"), strings.Index(page, "## table2"); i > j {
		t.Errorf("report.md puts table2 before table1")
	}

	rows := readAll[MetricRow](t, filepath.Join(out, "tables"))
	if len(rows) != 12 || rows[0].Method != "dataset" || rows[0].Metric != "face_sim" || rows[11].Metric != "dreamsim" {
		t.Errorf("tables dataset: %d rows, first %+v, last %+v", len(rows), rows[0], rows[len(rows)-1])
	}

	for _, c := range []struct {
		file                 string
		rows, cols, capLines int
		groups               []int // identity of each row
	}{
		{"figure_table1_cocoins.png", 3, 3, 1, []int{3, 0, 4}},
		{"figure_multi_cocoins.png", 2, 2, 2, []int{0, 1}}, // "a man / and a..."
	} {
		img, err := imageio.Decode([]byte(readText(t, filepath.Join(out, c.file))))
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		size, centre := sheetLayout(c.rows, c.cols, c.capLines)
		if got, want := img.Bounds().Size(), size; got != want {
			t.Errorf("%s: size %v, want %v (%d rows x %d columns)", c.file, got, want, c.rows, c.cols)
		}
		// The centre of cell (r, s) shows identity groups[r], sample s.
		for r, g := range c.groups {
			for s := range c.cols {
				p := centre(r, s)
				got := color.NRGBAModel.Convert(img.At(p.X, p.Y)).(color.NRGBA)
				if want := fixtureColor(g, s); got != want {
					t.Errorf("%s: cell (%d, %d) is %v, want identity %d sample %d %v", c.file, r, s, got, g, s, want)
				}
			}
		}
	}

	// A rerun without table2's input removes the files it no longer writes.
	if _, err := runConfig(t, dir, reportConfig("[b.metrics]", "")); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"table2.csv", "table2.md", "figure_table1_cocoins.png"} {
		if _, err := os.Stat(filepath.Join(out, gone)); !os.IsNotExist(err) {
			t.Errorf("%s survives a report that no longer makes it (err %v)", gone, err)
		}
	}
	if got := readText(t, filepath.Join(out, "table1.csv")); got != "method,face_sim,face_div,clip_t\nno_code,0.123,0.457,0.200\n" {
		t.Errorf("table1.csv after rerun:\n%s", got)
	}
}

func TestReportDuplicateNamesBothInputs(t *testing.T) {
	for _, c := range []struct{ metrics, images, want string }{
		{"[a.metrics, dup.metrics]", "", "table1/cocoins/face_sim is in both a.metrics and dup.metrics"},
		{"[a.metrics]", "[a.images, a.images]", "from both a.images (input 1) and a.images (input 2)"},
	} {
		_, err := runConfig(t, t.TempDir(), reportConfig(c.metrics, c.images))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("metrics %s images %s: want error containing %q, got %v", c.metrics, c.images, c.want, err)
		}
	}
}

func TestReportHelpers(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"table2", "table10", -1}, {"table10", "table2", 1}, {"table1", "table1", 0}, {"ablation", "table1", -1}, {"t", "t1", -1},
	} {
		if got := compareLabels(c.a, c.b); got != c.want {
			t.Errorf("compareLabels(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"a man", 16, "a man"},
		{"A  man is\nlooking at the camera.", 16, "A man is..."},
		{"supercalifragilistic", 10, "superca..."},
	} {
		if got := shortText(c.s, c.n); got != c.want || len(got) > c.n {
			t.Errorf("shortText(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
	for _, c := range []struct {
		r    MetricRow
		want string
	}{
		{MetricRow{Value: 0.6, Lo: 0.5714, Hi: 0.6281}, "0.600 [0.571, 0.628]"},
		{MetricRow{Value: 0.6, Lo: nan, Hi: nan}, "0.600"},
	} {
		if got := formatInterval(c.r); got != c.want {
			t.Errorf("formatInterval(%+v) = %q, want %q", c.r, got, c.want)
		}
	}
	if got := fileSafe("pos+neg/v2 x"); got != "pos_neg_v2_x" {
		t.Errorf("fileSafe = %q", got)
	}
}

// A table without the paper's measures (the baselines' cost table) has only its own columns,
// titled, with yes/no for the 1-or-0 ones; a paper table keeps the paper's three.
func TestReportCostTableColumns(t *testing.T) {
	if got := columnOrder([]string{"needs_tuning", "sec_per_image"}); !slices.Equal(got, []string{"sec_per_image", "needs_tuning"}) {
		t.Errorf("cost columns %v", got)
	}
	if got := columnOrder([]string{"clip_t", "class_acc"}); !slices.Equal(got, []string{"face_sim", "face_div", "clip_t", "class_acc"}) {
		t.Errorf("paper columns %v", got)
	}
	tab := &reportTable{name: "cost", methods: []string{"dreambooth"}, metrics: []string{"sec_per_image", "needs_tuning"},
		cells: map[string]map[string]MetricRow{"dreambooth": {
			"sec_per_image": {Value: 36.5, Lo: nan, Hi: nan, Images: 8},
			"needs_tuning":  {Value: 1, Lo: nan, Hi: nan, Images: 8},
		}}}
	md := tab.markdown()
	for _, want := range []string{"| s / image | Needs tuning |", "| dreambooth | 36.500 | yes |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
