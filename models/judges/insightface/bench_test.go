package insightface

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cocoflow/cocoflow/models/judges"
	"github.com/cocoflow/cocoflow/models/judges/ultraface"
	"github.com/cocoflow/cocoflow/models/runtime/ort"
)

// BenchmarkFaceChain measures the face judge's detect + align + embed on four 128 px
// synthfaces portraits per iteration: images/s, and ort-share, the fraction of the wall time
// spent inside the ONNX Runtime sessions' Run (the rest is cocoflow's resize, blob, decoding,
// NMS, alignment and normalisation). "scrfd" is the buffalo_l signature fixture (tiny random
// weights: ONNX Runtime's share is far below a real det_10g's, and its random heads leave
// thousands of candidates for NMS), "scrfd-few" the same with few candidates, "ultraface" the
// real RFB-320 detector with the fixture ArcFace.
func BenchmarkFaceChain(b *testing.B) {
	initORT(b)
	rfb := filepath.Join("..", "..", "..", "..", "shared", "data", "onnx", "version-RFB-320.onnx")
	if _, err := os.Stat(rfb); err != nil {
		b.Fatalf("the ultraface case needs %s: %v", rfb, err)
	}
	imgs := portraits(b, 4)
	for _, c := range []struct {
		name   string
		opts   map[string]string
		thresh float32
	}{
		{"scrfd", nil, DetThreshold},
		// The fixture at threshold 0.6 passes 0-3 anchors per portrait, as a trained det_10g
		// passes a handful: the chain's own cost without the random heads' NMS load.
		{"scrfd-few", nil, 0.6},
		{"ultraface", map[string]string{"detector": "ultraface", "detector_model": rfb}, ultraface.Threshold},
	} {
		b.Run(c.name, func(b *testing.B) {
			j, err := Open(judges.Spec{Kind: Kind, Path: pack, Options: c.opts}, ort.Options{IntraOpThreads: 1, InterOpThreads: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			switch d := j.det.(type) {
			case *SCRFD:
				d.Threshold = c.thresh
			case *ultraface.Detector:
				d.Threshold = c.thresh
			}
			if _, _, err := j.Embed(imgs); err != nil { // warm-up: first runs allocate
				b.Fatal(err)
			}
			ort0 := j.RunTime()
			start := time.Now()
			b.ResetTimer()
			for range b.N {
				if _, _, err := j.Embed(imgs); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			wall := time.Since(start)
			b.ReportMetric(float64(b.N*len(imgs))/wall.Seconds(), "images/s")
			b.ReportMetric((j.RunTime()-ort0).Seconds()/wall.Seconds(), "ort-share")
		})
	}
}
