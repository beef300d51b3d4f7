package tiny

// Benchmarks of the tiny generator on the pure-Go backend. Run, for instance:
//
//	go test ./models/family/tiny -run '^$' -bench PretrainStep -benchtime=3x
//
// BenchmarkPretrainStep times one optimizer step (forward, backward, AdamW, EMA) of the
// committed generator's architecture at batch 32, after compiling and one warm-up step.
// Sampling is benchmarked in models/family (BenchmarkSample).

import (
	"testing"

	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/diffusion"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
)

func BenchmarkPretrainStep(b *testing.B) {
	tok, err := Tokenizer()
	if err != nil {
		b.Fatal(err)
	}
	def, err := LoadDefault()
	if err != nil {
		b.Fatal(err)
	}
	cfg := def.Config()
	g, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	data := syntheticData(b, cfg, 64)
	if _, err := checkData(cfg, tok, data); err != nil {
		b.Fatal(err)
	}
	sched, _ := diffusion.NewSchedule(cfg.Schedule, cfg.TrainSteps)
	opt := DefaultPretrainOptions()
	opt.BatchSize = 32
	tr := trainer{m: g.m, opt: opt, data: data, sched: sched, tok: tok}
	be, err := engine.Backend()
	if err != nil {
		b.Fatal(err)
	}
	exec, err := context.NewExecAny(be, g.ctx.Reuse(), tr.step)
	if err != nil {
		b.Fatal(err)
	}
	defer exec.Finalize()
	in, _ := tr.batch(0)
	if _, err := exec.Exec(in...); err != nil { // compile and warm up
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		in, _ := tr.batch(i + 1)
		b.StartTimer()
		if _, err := exec.Exec(in...); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/step")
}
