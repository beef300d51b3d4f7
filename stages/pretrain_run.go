package stages

// The bookkeeping of one model of the pretrain stage: its folder, checkpoints, final folder,
// log CSV and loss figure.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/models/family/tiny"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
	"github.com/cocoflow/cocoflow/pipeline"
	"github.com/cocoflow/cocoflow/pipeline/chart"
)

// pretrainRun is the bookkeeping of one model's training in job.Dir: its folder <name>/ (with
// checkpoints/, final/, fingerprint and eval.json) and its log <name>_log.csv / <name>_loss.png.
type pretrainRun struct {
	job         *pipeline.Job
	name        string
	metric      string // name of the extra metric
	steps       int
	every       int // checkpoint interval: the CSV is written at every checkpoint
	fingerprint string
	rows        []PretrainLogRow
	prog        *pipeline.Progress
	csvErr      error
}

func (r *pretrainRun) dir() string         { return filepath.Join(r.job.Dir, r.name) }
func (r *pretrainRun) checkpoints() string { return filepath.Join(r.dir(), "checkpoints") }
func (r *pretrainRun) final() string       { return filepath.Join(r.dir(), "final") }
func (r *pretrainRun) csvPath() string     { return filepath.Join(r.job.Dir, r.name+"_log.csv") }
func (r *pretrainRun) pngPath() string     { return filepath.Join(r.job.Dir, r.name+"_loss.png") }

// start prepares the model's folder and reports whether its final folder is complete for this
// fingerprint (then it is not retrained). Checkpoints, final folder and log made with another
// fingerprint are removed, so a run never resumes from another configuration's checkpoint.
func (r *pretrainRun) start() (done bool, err error) {
	fpPath := filepath.Join(r.dir(), "fingerprint")
	old, _ := os.ReadFile(fpPath)
	if strings.TrimSpace(string(old)) != r.fingerprint {
		if len(old) > 0 {
			r.job.Log.Info("model settings or inputs changed: training from scratch", "model", r.name)
		}
		for _, path := range []string{r.dir(), r.csvPath(), r.pngPath()} {
			if err := os.RemoveAll(path); err != nil {
				return false, err
			}
		}
		if err := os.MkdirAll(r.dir(), 0o755); err != nil {
			return false, err
		}
		if err := pipeline.WriteFileAtomic(fpPath, []byte(r.fingerprint+"\n")); err != nil {
			return false, err
		}
	}
	r.rows, err = readPretrainLog(r.csvPath(), r.name, r.metric)
	if err != nil {
		return false, err
	}
	done = true
	for _, f := range []string{tiny.ConfigFile, engine.CheckpointFile} { // every model package's Save writes these two
		if _, err := os.Stat(filepath.Join(r.final(), f)); err != nil {
			done = false
		}
	}
	if done {
		r.job.Log.Info("final model exists for these settings: not retrained", "model", r.name, "dir", r.final())
	}
	return done, nil
}

// report records step (0-based) of the model's training.
func (r *pretrainRun) report(step int, loss, metric float64, elapsed time.Duration) {
	if r.prog == nil {
		r.prog = r.job.Progress(r.name, r.steps-step, "steps")
	}
	for len(r.rows) > 0 && int(r.rows[len(r.rows)-1].Step) >= step {
		r.rows = r.rows[:len(r.rows)-1]
	}
	r.rows = append(r.rows, PretrainLogRow{Model: r.name, Step: int32(step), Loss: float32(loss), Metric: float32(metric),
		MetricName: r.metric, Seconds: float32(elapsed.Seconds())})
	if step%10 == 0 || (step+1)%r.every == 0 || step == r.steps-1 {
		if err := writePretrainLog(r.csvPath(), r.metric, r.rows); err != nil && r.csvErr == nil {
			r.csvErr = err
		}
	}
	if step%50 == 0 {
		_ = r.plot() // a figure that could not be drawn now is drawn again at the end
	}
	r.prog.Add(1)
	if pretrainStepHook != nil {
		pretrainStepHook(r.name, step)
	}
}

// finish writes the log and its figure; trainErr is the training's result, returned first.
func (r *pretrainRun) finish(trainErr error) error {
	r.prog.Done()
	err := errors.Join(r.csvErr, writePretrainLog(r.csvPath(), r.metric, r.rows), r.plot())
	if trainErr != nil {
		return trainErr
	}
	return err
}

func (r *pretrainRun) plot() error {
	var x, loss, metric []float64
	for _, row := range r.rows {
		x = append(x, float64(row.Step))
		loss = append(loss, float64(row.Loss))
		metric = append(metric, float64(row.Metric))
	}
	img := chart.Plot{Title: "pretrain " + r.name, XLabel: "step", LogY: r.name == pretrainGenerator, Smooth: 10, Series: []chart.Series{
		{Name: "loss", X: x, Y: loss}, {Name: r.metric, X: x, Y: metric},
	}}.Draw()
	data, err := imageio.PNG(img)
	if err != nil {
		return err
	}
	return pipeline.WriteFileAtomic(r.pngPath(), data)
}

// saveFinal writes the final folder with save, under a temporary name renamed into place.
func (r *pretrainRun) saveFinal(save func(dir string) error) error {
	tmp := r.final() + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := save(tmp); err != nil {
		return err
	}
	if err := os.RemoveAll(r.final()); err != nil {
		return err
	}
	return os.Rename(tmp, r.final())
}

// row makes the model's output row from its final folder and evaluation, and records the
// evaluation (in the run manifest and <name>/eval.json).
func (r *pretrainRun) row(config any, eval any) (PretrainedModelRow, error) {
	cfg, err := json.Marshal(config)
	if err != nil {
		return PretrainedModelRow{}, err
	}
	ev := []byte("{}")
	if eval != nil {
		if ev, err = json.Marshal(eval); err != nil {
			return PretrainedModelRow{}, err
		}
		r.job.Record(r.name, eval)
	}
	if err := pipeline.WriteFileAtomic(filepath.Join(r.dir(), "eval.json"), append(ev, '\n')); err != nil {
		return PretrainedModelRow{}, err
	}
	entries, err := os.ReadDir(r.final())
	if err != nil {
		return PretrainedModelRow{}, err
	}
	row := PretrainedModelRow{Name: r.name, Config: string(cfg), Eval: string(ev), Steps: int32(r.steps), Fingerprint: r.fingerprint}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(r.final(), e.Name()))
		if err != nil {
			return PretrainedModelRow{}, err
		}
		sum := sha256.Sum256(data)
		row.Files = append(row.Files, PretrainFileItem{Name: e.Name(), Data: data, SHA256: hex.EncodeToString(sum[:])})
	}
	if n := len(r.rows); n > 0 {
		r.job.Record(r.name+"_final_loss", r.rows[n-1].Loss)
	}
	return row, nil
}

// ---- log files ----

func pretrainLogHeader(metric string) string { return "step,loss," + metric + ",seconds" }

func writePretrainLog(path, metric string, rows []PretrainLogRow) error {
	var b strings.Builder
	b.WriteString(pretrainLogHeader(metric) + "\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "%d,%g,%g,%.2f\n", r.Step, r.Loss, r.Metric, r.Seconds)
	}
	return pipeline.WriteFileAtomic(path, []byte(b.String()))
}

// readPretrainLog reads the CSV a previous (interrupted) run of the model left, so a resumed run
// keeps its rows; a missing file or another header starts the log afresh.
func readPretrainLog(path, model, metric string) ([]PretrainLogRow, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if lines[0] != pretrainLogHeader(metric) {
		return nil, nil
	}
	var rows []PretrainLogRow
	for n, l := range lines[1:] {
		r := PretrainLogRow{Model: model, MetricName: metric}
		if _, err := fmt.Sscanf(l, "%d,%g,%g,%g", &r.Step, &r.Loss, &r.Metric, &r.Seconds); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n+2, err)
		}
		rows = append(rows, r)
	}
	return rows, nil
}
