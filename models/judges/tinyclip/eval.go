package tinyclip

import (
	"fmt"
	"image"
	"slices"
	"strings"
)

// EvalData is a held-out captioned image set for Evaluate: Captions[i] is one caption of
// Images[i] and Classes[i] its class word.
type EvalData struct {
	Images   []image.Image
	Captions []string
	Classes  []string
}

// Report holds the held-out numbers of a tiny CLIP.
type Report struct {
	Images int `json:"images"`

	// Image→text retrieval: images are cut into consecutive groups of Candidates; each image
	// ranks its group's captions. A hit is a caption whose text equals the image's own (the
	// templates repeat short captions).
	Candidates    int     `json:"candidates"`
	RetrievalTop1 float64 `json:"retrieval_top1"`
	RetrievalTop5 float64 `json:"retrieval_top5"`
	// Chance is the expected top-1 of a random ranking (repeated captions make it above 1/Candidates).
	Chance float64 `json:"chance"`

	// CLIPT is the mean cosine between each image and its own caption (the paper's CLIP-T on
	// real data).
	CLIPT float64 `json:"clip_t"`

	// Class-word retrieval: each image against ClassPrompt of every class in ClassNames.
	ClassNames []string           `json:"class_names"`
	ClassAcc   float64            `json:"class_acc"`
	PerClass   map[string]float64 `json:"per_class"`
	Confusion  [][]int            `json:"confusion"` // [true][predicted], in ClassNames order
}

// String formats the report: the headline numbers on one line, then the confusion matrix.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "images=%d i2t_top1@%d=%.3f (chance %.3f) top5=%.3f clip_t=%.3f class_acc=%.3f\n",
		r.Images, r.Candidates, r.RetrievalTop1, r.Chance, r.RetrievalTop5, r.CLIPT, r.ClassAcc)
	fmt.Fprintf(&b, "%-8s", "true\\pred")
	for _, c := range r.ClassNames {
		fmt.Fprintf(&b, " %7s", c)
	}
	b.WriteString("     acc\n")
	for i, row := range r.Confusion {
		fmt.Fprintf(&b, "%-9s", r.ClassNames[i])
		for _, n := range row {
			fmt.Fprintf(&b, " %7d", n)
		}
		fmt.Fprintf(&b, " %7.3f\n", r.PerClass[r.ClassNames[i]])
	}
	return b.String()
}

// Evaluate scores m on held-out data: image→text retrieval among groups of candidates captions
// (100 if candidates ≤ 0), CLIP-T, and class-word retrieval over classes (the distinct class
// words of data, sorted, if classes is empty). It returns an error if the lengths of data's
// slices differ, an image's class is not among classes, or embedding fails.
func Evaluate(m *Model, data EvalData, classes []string, candidates int) (Report, error) {
	n := len(data.Images)
	if len(data.Captions) != n || len(data.Classes) != n {
		return Report{}, fmt.Errorf("tinyclip.Evaluate: %d images, %d captions, %d classes: want equal counts", n, len(data.Captions), len(data.Classes))
	}
	if n < 2 {
		return Report{}, fmt.Errorf("tinyclip.Evaluate: %d images, want at least 2", n)
	}
	if candidates <= 0 {
		candidates = 100
	}
	if len(classes) == 0 {
		classes = slices.Compact(slices.Sorted(slices.Values(data.Classes)))
	}
	truth := make([]int, n)
	for i, c := range data.Classes {
		truth[i] = slices.Index(classes, c)
		if truth[i] < 0 {
			return Report{}, fmt.Errorf("tinyclip.Evaluate: image %d: class %q is not among %v", i, c, classes)
		}
	}
	iv, err := m.EmbedImages(data.Images)
	if err != nil {
		return Report{}, fmt.Errorf("tinyclip.Evaluate: %w", err)
	}
	tv, err := m.EmbedTexts(data.Captions)
	if err != nil {
		return Report{}, fmt.Errorf("tinyclip.Evaluate: %w", err)
	}
	r := Report{Images: n, Candidates: candidates, ClassNames: classes, PerClass: map[string]float64{}}
	var top1, top5, chance, clipT float64
	for start := 0; start < n; start += candidates {
		end := min(start+candidates, n)
		for i := start; i < end; i++ {
			own := dot(iv[i], tv[i])
			clipT += own
			// Rank of the best positive: captions scoring above it that are not positives.
			better, positives := 0, 0
			bestPos := -2.0
			for j := start; j < end; j++ {
				if data.Captions[j] == data.Captions[i] {
					positives++
					bestPos = max(bestPos, dot(iv[i], tv[j]))
				}
			}
			for j := start; j < end; j++ {
				if data.Captions[j] != data.Captions[i] && dot(iv[i], tv[j]) > bestPos {
					better++
				}
			}
			if better == 0 {
				top1++
			}
			if better < 5 {
				top5++
			}
			chance += float64(positives) / float64(end-start)
		}
	}
	r.RetrievalTop1, r.RetrievalTop5, r.Chance, r.CLIPT = top1/float64(n), top5/float64(n), chance/float64(n), clipT/float64(n)

	prompts := make([]string, len(classes))
	for i, c := range classes {
		prompts[i] = ClassPrompt(c)
	}
	pv, err := m.EmbedTexts(prompts)
	if err != nil {
		return Report{}, fmt.Errorf("tinyclip.Evaluate: %w", err)
	}
	r.Confusion = make([][]int, len(classes))
	for i := range r.Confusion {
		r.Confusion[i] = make([]int, len(classes))
	}
	correct := 0
	for i, v := range iv {
		p := argmaxCos(v, pv)
		r.Confusion[truth[i]][p]++
		if p == truth[i] {
			correct++
		}
	}
	r.ClassAcc = float64(correct) / float64(n)
	for i, c := range classes {
		total := 0
		for _, k := range r.Confusion[i] {
			total += k
		}
		if total > 0 {
			r.PerClass[c] = float64(r.Confusion[i][i]) / float64(total)
		}
	}
	return r, nil
}

// dot is the dot product of two embeddings (their cosine when both are unit-norm).
func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}
