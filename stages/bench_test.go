package stages

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/cocoflow/cocoflow/pipeline"
)

const benchImages = 400

var (
	benchOnce sync.Once
	benchDir  string
	benchCfg  *pipeline.Config
	benchErr  error
)

// benchPrep runs the tiny prep once (400 images) and returns its workdir and config.
func benchPrep(b *testing.B) (string, *pipeline.Config) {
	benchOnce.Do(func() {
		benchDir, benchErr = osMkdirTemp()
		if benchErr != nil {
			return
		}
		benchCfg, benchErr = pipeline.ParseConfig("bench.yaml", []byte(prepConfig("name: bench", "{identities: 50, images_per_identity: 8, shard_size: 100}", true)))
		if benchErr != nil {
			return
		}
		_, benchErr = pipeline.Run(context.Background(), benchCfg, pipeline.Options{Workdir: benchDir})
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchDir, benchCfg
}

// benchStage reruns one prep stage (forced) and reports its throughput in images/s.
func benchStage(b *testing.B, stage string) {
	dir, cfg := benchPrep(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := pipeline.Run(context.Background(), cfg, pipeline.Options{Workdir: dir, Only: []string{stage}, Force: true}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchImages*b.N)/b.Elapsed().Seconds(), "images/s")
}

func BenchmarkPrepIngest(b *testing.B)   { benchStage(b, "ingest") }
func BenchmarkPrepCaption(b *testing.B)  { benchStage(b, "caption") }
func BenchmarkPrepMask(b *testing.B)     { benchStage(b, "mask") }
func BenchmarkPrepEncode(b *testing.B)   { benchStage(b, "encode") }
func BenchmarkPrepTriplets(b *testing.B) { benchStage(b, "triplets") }

func osMkdirTemp() (string, error) { return os.MkdirTemp("", "cocoflow-bench") }

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}
