package clip

import (
	"testing"
)

// BenchmarkEncode reports tokens/s over the golden texts, with a warm BPE cache (the usual case:
// prompts repeat words) and with the cache emptied before every text.
func BenchmarkEncode(b *testing.B) {
	gz, gold := sharedData(b)
	tok, err := Load(gz)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name  string
		clear bool
	}{{"cached", false}, {"uncached", true}} {
		b.Run(bc.name, func(b *testing.B) {
			tokens := 0
			for b.Loop() {
				for _, g := range gold {
					if bc.clear {
						tok.mu.Lock()
						clear(tok.cache)
						tok.mu.Unlock()
					}
					tokens += len(tok.Encode(g.Text).IDs)
				}
			}
			b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// BenchmarkLoad reports how long reading OpenAI's vocabulary takes.
func BenchmarkLoad(b *testing.B) {
	gz, _ := sharedData(b)
	for b.Loop() {
		if _, err := Load(gz); err != nil {
			b.Fatal(err)
		}
	}
}
