package baselines

import (
	"testing"

	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/family/tiny"
)

// benchGroup samples groups of 4 portraits with the committed generator (10 guided DDIM steps,
// as the evaluation does) and reports images per second.
func benchGroup(b *testing.B, mech func(depth int) Mechanism) {
	g, err := tiny.LoadDefault()
	if err != nil {
		b.Fatal(err)
	}
	m := mech(g.Config().Depth)
	s, err := NewGroupSampler(g, m, family.SampleOptions{Steps: 10, Guidance: 4})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	reqs := requests(g, 4, "a man is looking at the camera.")
	grp := Group{Requests: reqs, Subject: [][]int{{2}, {2}, {2}, {2}}}
	b.ResetTimer()
	for range b.N {
		if _, err := s.Sample(grp); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(4*b.N)/b.Elapsed().Seconds(), "images/s")
}

func BenchmarkPlainGroup(b *testing.B) {
	benchGroup(b, func(int) Mechanism { return Plain{} })
}

func BenchmarkStoryDiffusion(b *testing.B) {
	benchGroup(b, func(d int) Mechanism { return StoryDiffusion{Rate: 0.5, FromLayer: d / 2, PlainSteps: 1} })
}

func BenchmarkConsiStory(b *testing.B) {
	benchGroup(b, func(d int) Mechanism {
		return ConsiStory{Anchors: 2, MaskDropout: 0.5, FromLayer: d / 2, MaskSteps: 3, BlendSteps: 2, QueryBlend: 0.5,
			InjectFrom: 2, InjectTo: 8, InjectAlpha: 0.8}
	})
}
