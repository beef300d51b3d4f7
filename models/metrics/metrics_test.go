package metrics

import (
	"math"
	"testing"
)

func close(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestSimilarityAndDiversityOnKnownEmbeddings(t *testing.T) {
	e1, e2, e3 := []float32{1, 0, 0}, []float32{0, 1, 0}, []float32{0, 0, 1}
	cases := []struct {
		name     string
		groups   []Group
		sim, div float64
	}{
		// Each identity always gives the same vector, identities are orthogonal: perfectly
		// consistent and perfectly diverse.
		{"identical within, orthogonal between", []Group{{e1, e1, e1}, {e2, e2}, {e3, e3}}, 1, 1},
		// Every image is the same vector: consistent but no diversity at all.
		{"one face for everyone", []Group{{e1, e1}, {e1, e1}}, 1, 0},
		// Within an identity the images are orthogonal: no consistency; the means of
		// the two identities are (1,1,0)/2 and (0,1,1)/2, cosine 1/2.
		{"inconsistent", []Group{{e1, e2}, {e2, e3}}, 0, 0.5},
		// Opposite images within an identity: similarity −1.
		{"opposites", []Group{{e1, []float32{-1, 0, 0}}, {e2, e3}}, -0.5, math.NaN()},
	}
	for _, c := range cases {
		if got := Similarity(c.groups); !close(got, c.sim) {
			t.Errorf("%s: Similarity = %v, want %v", c.name, got, c.sim)
		}
		if math.IsNaN(c.div) {
			continue
		}
		if got := Diversity(c.groups); !close(got, c.div) {
			t.Errorf("%s: Diversity = %v, want %v", c.name, got, c.div)
		}
	}
	if !math.IsNaN(Similarity([]Group{{e1}})) || !math.IsNaN(Diversity([]Group{{e1, e2}})) {
		t.Error("want NaN for singleton groups / a single identity")
	}
	// Scale does not matter (cosine).
	if got := Similarity([]Group{{e1, []float32{5, 0, 0}}}); !close(got, 1) {
		t.Errorf("scaled copy: %v", got)
	}
}

func TestMeanCosine(t *testing.T) {
	got, err := MeanCosine([][]float32{{1, 0}, {1, 1}}, [][]float32{{1, 0}, {1, 0}})
	if err != nil || !close(got, (1+1/math.Sqrt2)/2) {
		t.Fatalf("MeanCosine = %v, %v", got, err)
	}
	if _, err := MeanCosine([][]float32{{1}}, nil); err == nil {
		t.Fatal("want an error for mismatched lengths")
	}
}

func TestBootstrapCoversTheEstimate(t *testing.T) {
	var groups []Group
	for i := 0; i < 40; i++ {
		a := float32(i%7) / 7
		groups = append(groups, Group{{1, a}, {1, a + 0.1}, {1, -a}})
	}
	est := Similarity(groups)
	ci := Bootstrap(groups, Similarity, 500, 0.95, 1)
	if !(ci.Lo <= est && est <= ci.Hi) || ci.Hi-ci.Lo <= 0 {
		t.Fatalf("interval %v does not cover the estimate %v", ci, est)
	}
	if again := Bootstrap(groups, Similarity, 500, 0.95, 1); again != ci {
		t.Fatal("bootstrap is not deterministic for a seed")
	}
	// Identical groups: no variation, a zero-width interval.
	same := []Group{{{1, 0}, {1, 0}}, {{1, 0}, {1, 0}}}
	if ci := Bootstrap(same, Similarity, 100, 0.95, 2); ci.Lo != 1 || ci.Hi != 1 {
		t.Fatalf("identical groups: %v", ci)
	}
	scores := PairedGroups(map[string][]float64{"a": {0.2, 0.4}, "b": {0.6}}, []string{"a", "b"})
	if got := MeanOfGroups(scores); math.Abs(got-0.4) > 1e-6 {
		t.Fatalf("MeanOfGroups = %v", got)
	}
}
