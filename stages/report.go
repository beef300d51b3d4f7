package stages

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/pipeline"
	"github.com/cocoflow/cocoflow/pipeline/chart"
)

type reportParams struct {
	SheetIdentities int `param:"sheet_identities" default:"4" min:"1" doc:"identities (rows) per contact sheet"`
	SheetSamples    int `param:"sheet_samples" default:"6" min:"1" doc:"images (columns) per identity on a contact sheet"`
	Scale           int `param:"scale" default:"3" min:"1" doc:"pixel magnification of the images on contact sheets"`
}

func init() {
	pipeline.Register(pipeline.Spec[reportParams]{
		Name:    "report",
		Version: "1",
		Doc: "Writes the paper's tables (§4.3-4.4, Tables 1-5) and Figure 3/6-like contact sheets from " +
			"evaluate outputs into the stage folder: <table>.csv and <table>.md per table label, " +
			"figure_<table>_<method>.png per images input and method (multi-subject rows in " +
			"figure_multi_<method>.png), and report.md with everything. Methods keep the order in " +
			"which they first appear in the metrics inputs; the same table, method and metric in " +
			"two inputs is an error. Files of an earlier run that this run does not write again " +
			"are removed.",
		Inputs: []pipeline.Port{
			{Name: "metrics", List: true, Doc: "evaluate metrics outputs, in table row order", Schema: MetricRow{}},
			{Name: "images", List: true, Optional: true, Doc: "evaluate images outputs, for the figures", Schema: EvalImageRow{}},
		},
		Outputs: []pipeline.Port{{Name: "tables", Doc: "every metric of every table, in report order", Schema: MetricRow{}}},
		Run:     runReport,
	})
}

// knownMetrics are the paper's columns, in its order, with their titles, then evaluate's count
// of images without a face and the baselines' later-run and cost measures; optional ones are
// columns only when present, and the paper's three only in a table that has one of them.
var knownMetrics = []struct {
	name, title string
	optional    bool
}{
	{"face_sim", "Face Sim. ↑", false},
	{"face_div", "Face Div. ↑", false},
	{"clip_t", "CLIP-T ↑", false},
	{"dreamsim", "DreamSim ↑", true},
	{"no_face", "No face", true},
	{"face_sim_runs", "Face Sim. between runs ↑", true},
	{"sec_per_image", "s / image", true},
	{"batch", "Batch", true},
	{"needs_refs", "Needs references", true},
	{"needs_tuning", "Needs tuning", true},
}

// yesNo are the measures that are 1 or 0 for yes or no.
var yesNo = []string{"needs_refs", "needs_tuning"}

// tableCaptions say which table of the paper a table label mirrors.
var tableCaptions = map[string]string{
	"table1": "Mirrors the paper's Table 1: quantitative performance on Portraits.",
	"table2": "Mirrors the paper's Table 2: quantitative performance on Scenes.",
	"table3": "Mirrors the paper's Table 3: ablation of the consistency loss.",
	"table4": "Mirrors the paper's Table 4: ablation of the background loss.",
	"table5": "Mirrors the paper's Table 5: prompts and noise of the training triplets.",
}

// reportTable is one table of the report: its methods (rows) in first-appearance order and
// their metrics.
type reportTable struct {
	name    string
	methods []string
	metrics []string // columns, paper order first, then unknown metrics as they appear
	cells   map[string]map[string]MetricRow
}

func runReport(ctx context.Context, job *pipeline.Job, p *reportParams) error {
	if err := os.MkdirAll(job.Dir, 0o755); err != nil {
		return err
	}
	tables, err := collectTables(job, job.Inputs("metrics"))
	if err != nil {
		return err
	}
	var written []string
	write := func(name string, data []byte) error {
		path := filepath.Join(job.Dir, name)
		if err := pipeline.WriteFileAtomic(path, data); err != nil {
			return err
		}
		job.Log.Info("wrote", "path", path)
		written = append(written, name)
		return nil
	}
	var page strings.Builder
	fmt.Fprintf(&page, "# Results: %s\n\nMetrics from %s. Values are means with their bootstrap 95%% interval over identities.\n",
		job.Run, strings.Join(datasetLabels(job, job.Inputs("metrics")), ", "))
	var rows []MetricRow
	bases := map[string]string{"report": "the report page"}
	for _, t := range tables {
		base := fileSafe(t.name)
		if other, taken := bases[base]; taken {
			return fmt.Errorf("metrics: table %q would be written to %s.md, like %s: rename the table", t.name, base, other)
		}
		bases[base] = fmt.Sprintf("table %q", t.name)
		if err := write(base+".csv", t.csv()); err != nil {
			return err
		}
		if err := write(base+".md", []byte("# "+t.markdown())); err != nil {
			return err
		}
		fmt.Fprintf(&page, "\n## %s\n[%s.csv](%s.csv)\n", t.markdown(), base, base)
		for _, m := range t.methods {
			for _, metric := range t.metrics {
				if r, ok := t.cells[m][metric]; ok {
					rows = append(rows, r)
				}
			}
		}
	}
	figures, err := collectFigures(ctx, job, job.Inputs("images"), p)
	if err != nil {
		return err
	}
	if len(figures) > 0 {
		page.WriteString("\n## Figures\n")
	}
	for _, f := range figures {
		data, err := f.draw(p.SheetSamples, p.Scale)
		if err != nil {
			return err
		}
		if err := write(f.file, data); err != nil {
			return err
		}
		fmt.Fprintf(&page, "\n### %s\n\n![%s](%s)\n", f.title(), f.title(), f.file)
	}
	if err := write("report.md", []byte(page.String())); err != nil {
		return err
	}
	if err := removeStale(job, written); err != nil {
		return err
	}
	job.Record("files", written)
	return pipeline.WriteRows(job, job.Output("tables"), rows, 0)
}

// datasetLabel names a dataset in messages as the config does: stage.output, prefixed with its
// run when it comes from another run; its folder when it has no manifest.
func datasetLabel(job *pipeline.Job, ds *pipeline.Dataset) string {
	m := ds.Manifest
	if m == nil || m.Stage == "" {
		return ds.Dir
	}
	if m.Run != job.Run {
		return m.Run + "/" + m.Stage + "." + m.Output
	}
	return m.Stage + "." + m.Output
}

// datasetLabels labels the datasets of a list port, adding "(input i)" to a dataset listed
// more than once so that messages tell the entries apart.
func datasetLabels(job *pipeline.Job, dss []*pipeline.Dataset) []string {
	out := make([]string, len(dss))
	count := map[string]int{}
	for i, ds := range dss {
		out[i] = datasetLabel(job, ds)
		count[out[i]]++
	}
	for i := range out {
		if count[out[i]] > 1 {
			out[i] += fmt.Sprintf(" (input %d)", i+1)
		}
	}
	return out
}

// collectTables reads the metric datasets in order into tables, sorted by label (table2 before
// table10), rejecting a (table, method, metric) that appears twice.
func collectTables(job *pipeline.Job, inputs []*pipeline.Dataset) ([]*reportTable, error) {
	byName := map[string]*reportTable{}
	seen := map[[3]string]string{}
	labels := datasetLabels(job, inputs)
	for di, ds := range inputs {
		label := labels[di]
		rows, err := pipeline.ReadAll[MetricRow](ds)
		if err != nil {
			return nil, fmt.Errorf("metrics %s: %w", label, err)
		}
		for i, r := range rows {
			for _, f := range []struct{ field, value string }{{"table", r.Table}, {"method", r.Method}, {"metric", r.Metric}} {
				if f.value == "" {
					return nil, fmt.Errorf("metrics %s: row %d: empty %s", label, i, f.field)
				}
			}
			key := [3]string{r.Table, r.Method, r.Metric}
			if prev, dup := seen[key]; dup {
				if prev == label {
					return nil, fmt.Errorf("metrics %s: row %d: %s/%s/%s appears twice", label, i, r.Table, r.Method, r.Metric)
				}
				return nil, fmt.Errorf("metrics: %s/%s/%s is in both %s and %s: each table row must come from one evaluation",
					r.Table, r.Method, r.Metric, prev, label)
			}
			seen[key] = label
			t := byName[r.Table]
			if t == nil {
				t = &reportTable{name: r.Table, cells: map[string]map[string]MetricRow{}}
				byName[r.Table] = t
			}
			if t.cells[r.Method] == nil {
				t.methods = append(t.methods, r.Method)
				t.cells[r.Method] = map[string]MetricRow{}
			}
			t.cells[r.Method][r.Metric] = r
			if !slices.Contains(t.metrics, r.Metric) {
				t.metrics = append(t.metrics, r.Metric)
			}
		}
	}
	if len(byName) == 0 {
		return nil, fmt.Errorf("metrics %s: no rows", strings.Join(datasetLabels(job, inputs), ", "))
	}
	tables := make([]*reportTable, 0, len(byName))
	for _, t := range byName {
		t.metrics = columnOrder(t.metrics)
		tables = append(tables, t)
	}
	slices.SortFunc(tables, func(a, b *reportTable) int { return compareLabels(a.name, b.name) })
	return tables, nil
}

// columnOrder puts the paper's metrics first (face_sim, face_div, clip_t always; dreamsim and
// no_face when present), then the others as they appeared.
func columnOrder(present []string) []string {
	paper := slices.ContainsFunc(present, func(m string) bool { return m == "face_sim" || m == "face_div" || m == "clip_t" })
	var cols []string
	for _, k := range knownMetrics {
		if !k.optional && paper || slices.Contains(present, k.name) {
			cols = append(cols, k.name)
		}
	}
	for _, m := range present {
		if !slices.Contains(cols, m) {
			cols = append(cols, m)
		}
	}
	return cols
}

// compareLabels orders labels by their text, with a trailing number compared as a number.
func compareLabels(a, b string) int {
	pa, na := splitNumber(a)
	pb, nb := splitNumber(b)
	if pa == pb && na >= 0 && nb >= 0 {
		return cmp.Compare(na, nb)
	}
	return strings.Compare(a, b)
}

func splitNumber(s string) (string, int) {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	n, err := strconv.Atoi(s[i:])
	if err != nil {
		return s, -1
	}
	return s[:i], n
}

func metricTitle(name string) string {
	for _, k := range knownMetrics {
		if k.name == name {
			return k.title
		}
	}
	return name
}

func (t *reportTable) csv() []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write(append([]string{"method"}, t.metrics...))
	for _, m := range t.methods {
		rec := []string{m}
		for _, metric := range t.metrics {
			cell := ""
			if r, ok := t.cells[m][metric]; ok {
				cell = strconv.FormatFloat(r.Value, 'f', 3, 64)
			}
			rec = append(rec, cell)
		}
		w.Write(rec)
	}
	w.Flush() // writes to a bytes.Buffer cannot fail
	return b.Bytes()
}

// markdown renders the table under a heading line (without its leading #s): caption, then rows
// with value [lo, hi] and the identity and image counts.
func (t *reportTable) markdown() string {
	var b strings.Builder
	b.WriteString(t.name + "\n\n")
	if c, ok := tableCaptions[t.name]; ok {
		b.WriteString(c + "\n\n")
	}
	b.WriteString("| Method |")
	for _, m := range t.metrics {
		b.WriteString(" " + t.columnTitle(m) + " |")
	}
	b.WriteString(" Identities | Images |\n|---|")
	for range t.metrics {
		b.WriteString("---:|")
	}
	b.WriteString("---:|---:|\n")
	for _, m := range t.methods {
		b.WriteString("| " + strings.ReplaceAll(m, "|", `\|`) + " |")
		var ids, imgs int32
		for _, metric := range t.metrics {
			r, ok := t.cells[m][metric]
			if !ok {
				b.WriteString(" — |")
				continue
			}
			ids, imgs = max(ids, r.Identities), max(imgs, r.Images)
			if metric == "no_face" {
				fmt.Fprintf(&b, " %d of %d |", int64(r.Value), r.Images)
				continue
			}
			if slices.Contains(yesNo, metric) {
				b.WriteString(map[bool]string{true: " yes |", false: " no |"}[r.Value != 0])
				continue
			}
			b.WriteString(" " + formatInterval(r) + " |")
		}
		fmt.Fprintf(&b, " %d | %d |\n", ids, imgs)
	}
	return b.String()
}

// columnTitle is the metric's title with the judges that computed its cells, as the metric
// rows name them ("CLIP-T ↑ (tinyclip, raw cosine)").
func (t *reportTable) columnTitle(metric string) string {
	var by []string
	for _, m := range t.methods {
		if r, ok := t.cells[m][metric]; ok && r.Judge != "" && !slices.Contains(by, r.Judge) {
			by = append(by, r.Judge)
		}
	}
	title := metricTitle(metric)
	if len(by) > 0 {
		title += " (" + strings.ReplaceAll(strings.Join(by, "; "), "|", `\|`) + ")"
	}
	return title
}

// formatInterval writes "0.600 [0.571, 0.628]", or the value alone without an interval.
func formatInterval(r MetricRow) string {
	v := strconv.FormatFloat(r.Value, 'f', 3, 64)
	if !finite(r.Lo) || !finite(r.Hi) {
		return v
	}
	return fmt.Sprintf("%s [%.3f, %.3f]", v, r.Lo, r.Hi)
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// fileSafe keeps letters, digits, '-', '_' and '.', replacing anything else with '_'.
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, s)
}

// figure is one contact sheet: the first identities of one method (and table) of one images
// input, each with its first samples.
type figure struct {
	file          string
	source        string // dataset label
	table, method string // table is "" for the multi-subject figure
	groups        []string
	rows          map[string][]EvalImageRow
}

func (f *figure) title() string {
	if f.table == "" {
		return "multi: " + f.method
	}
	return f.table + ": " + f.method
}

// add keeps r when its group is among the first maxGroups, and only the maxSamples lowest
// samples of a group, so that memory stays bounded by the sheet's size.
func (f *figure) add(r EvalImageRow, maxGroups, maxSamples int) {
	rows, ok := f.rows[r.Group]
	if !ok {
		if len(f.groups) >= maxGroups {
			return
		}
		f.groups = append(f.groups, r.Group)
	}
	rows = append(rows, r)
	if len(rows) > 2*maxSamples {
		sortSamples(rows)
		rows = rows[:maxSamples]
	}
	f.rows[r.Group] = rows
}

func sortSamples(rows []EvalImageRow) {
	slices.SortStableFunc(rows, func(a, b EvalImageRow) int {
		return cmp.Or(cmp.Compare(a.Sample, b.Sample), strings.Compare(a.ID, b.ID))
	})
}

// collectFigures reads the images inputs in order and groups their rows into figures, in the
// order the figures first appear.
func collectFigures(ctx context.Context, job *pipeline.Job, inputs []*pipeline.Dataset, p *reportParams) ([]*figure, error) {
	var figures []*figure
	byFile := map[string]*figure{}
	labels := datasetLabels(job, inputs)
	for di, ds := range inputs {
		label := labels[di]
		row := 0
		for shard := 0; shard < ds.NumShards(); shard++ {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			rows, err := pipeline.ReadShard[EvalImageRow](ds, shard)
			if err != nil {
				return nil, fmt.Errorf("images %s: %w", label, err)
			}
			for _, r := range rows {
				row++
				table, file := r.Table, "figure_"+fileSafe(r.Table)+"_"+fileSafe(r.Method)+".png"
				if strings.Contains(r.Subject, "+") {
					table, file = "", "figure_multi_"+fileSafe(r.Method)+".png"
				}
				f := byFile[file]
				if f == nil {
					f = &figure{file: file, source: label, table: table, method: r.Method, rows: map[string][]EvalImageRow{}}
					byFile[file] = f
					figures = append(figures, f)
				}
				if f.source != label {
					return nil, fmt.Errorf("images: %s gets rows of %s from both %s and %s: one images input per table and method",
						file, f.title(), f.source, label)
				}
				if f.table != table || f.method != r.Method {
					return nil, fmt.Errorf("images %s: row %d (id %q): table %q method %q and table %q method %q would share %s",
						label, row-1, r.ID, r.Table, r.Method, f.table, f.method, file)
				}
				f.add(r, p.SheetIdentities, p.SheetSamples)
			}
		}
	}
	return figures, nil
}

// draw lays the figure out as a contact sheet (rows = identities, columns = their first
// maxSamples images in sample order, captions = shortened prompts) and encodes it as PNG.
func (f *figure) draw(maxSamples, scale int) ([]byte, error) {
	width := 0
	var rows [][]EvalImageRow
	var imgs [][]image.Image
	for _, g := range f.groups {
		group := f.rows[g]
		sortSamples(group)
		group = group[:min(len(group), maxSamples)]
		var decoded []image.Image
		for _, r := range group {
			img, err := imageio.Decode(r.Image)
			if err != nil {
				return nil, fmt.Errorf("images %s: image %q: %w", f.source, r.ID, err)
			}
			width = max(width, img.Bounds().Dx())
			decoded = append(decoded, img)
		}
		rows, imgs = append(rows, group), append(imgs, decoded)
	}
	sheet := chart.Sheet{Title: f.title(), Scale: scale, RowLabels: f.groups, WrapAt: max(8, width*scale/8)}
	for gi, group := range rows {
		cells := make([]chart.Cell, len(group))
		for i, r := range group {
			cells[i] = chart.Cell{Image: imgs[gi][i], Caption: shortText(r.Prompt, 2*sheet.WrapAt)}
		}
		sheet.Rows = append(sheet.Rows, cells)
	}
	return imageio.PNG(sheet.Draw())
}

// shortText cuts s to at most n bytes at a word boundary, marking the cut with "...".
func shortText(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	cut := s[:max(0, n-3)]
	if i := strings.LastIndexByte(cut, ' '); i > 0 {
		cut = cut[:i]
	}
	return cut + "..."
}

// removeStale deletes the report files (*.csv, *.md, figure_*.png) of an earlier run that this
// run did not write, so that the folder shows the current results only.
func removeStale(job *pipeline.Job, written []string) error {
	entries, err := os.ReadDir(job.Dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		ours := strings.HasSuffix(name, ".csv") || strings.HasSuffix(name, ".md") ||
			strings.HasPrefix(name, "figure_") && strings.HasSuffix(name, ".png")
		if !e.Type().IsRegular() || !ours || slices.Contains(written, name) {
			continue
		}
		if err := os.Remove(filepath.Join(job.Dir, name)); err != nil {
			return err
		}
		job.Log.Info("removed a file of an earlier report", "path", filepath.Join(job.Dir, name))
	}
	return nil
}
