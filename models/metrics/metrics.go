// Package metrics computes the paper's evaluation measures (§4.2) from embeddings, whatever
// model made them: ArcFace or the tiny identity encoder for faces, CLIP or tiny CLIP for
// image-text fidelity, DreamSim or tiny-CLIP subject features for perceptual similarity. Model
// adapters implement the small embedder interfaces; the measures only see vectors.
package metrics

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"sort"
)

// FaceEmbedder maps face images to identity embeddings (ArcFace's role).
type FaceEmbedder interface {
	EmbedFaces(images []image.Image) ([][]float32, error)
}

// ImageEmbedder maps images to embeddings (CLIP's image tower; DreamSim).
type ImageEmbedder interface {
	EmbedImages(images []image.Image) ([][]float32, error)
}

// TextEmbedder maps texts to embeddings in the same space as an ImageEmbedder (CLIP's text tower).
type TextEmbedder interface {
	EmbedTexts(texts []string) ([][]float32, error)
}

// Cosine returns the cosine similarity of a and b (0 when either is zero).
func Cosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return dot / math.Sqrt(na*nb)
}

// Group is the embeddings of one identity's images.
type Group [][]float32

// Similarity is the mean pairwise cosine similarity within each group, averaged over the groups
// (each identity weighs the same). Face Sim is Similarity of face embeddings; the DreamSim-style
// subject similarity is Similarity of perceptual embeddings of the subject region. Groups with
// fewer than two members are skipped; NaN when no group has two.
func Similarity(groups []Group) float64 {
	sum, n := 0.0, 0
	for _, g := range groups {
		if len(g) < 2 {
			continue
		}
		s, pairs := 0.0, 0
		for i := range g {
			for j := i + 1; j < len(g); j++ {
				s += Cosine(g[i], g[j])
				pairs++
			}
		}
		sum += s / float64(pairs)
		n++
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}

// Diversity is Face Div: 1 − the mean pairwise cosine similarity between the groups' mean
// embeddings (each identity's embeddings averaged first). NaN with fewer than two groups.
func Diversity(groups []Group) float64 {
	var means [][]float32
	for _, g := range groups {
		if len(g) == 0 {
			continue
		}
		m := make([]float32, len(g[0]))
		for _, v := range g {
			for i, x := range v {
				m[i] += x / float32(len(g))
			}
		}
		means = append(means, m)
	}
	if len(means) < 2 {
		return math.NaN()
	}
	s, pairs := 0.0, 0
	for i := range means {
		for j := i + 1; j < len(means); j++ {
			s += Cosine(means[i], means[j])
			pairs++
		}
	}
	return 1 - s/float64(pairs)
}

// MeanCosine is CLIP-T: the mean of cosine(a[i], b[i]) — text and image embeddings of the same
// generation.
func MeanCosine(a, b [][]float32) (float64, error) {
	if len(a) != len(b) {
		return 0, fmt.Errorf("metrics: %d texts but %d images", len(a), len(b))
	}
	if len(a) == 0 {
		return math.NaN(), nil
	}
	s := 0.0
	for i := range a {
		s += Cosine(a[i], b[i])
	}
	return s / float64(len(a)), nil
}

// Interval is a bootstrap confidence interval.
type Interval struct{ Lo, Hi float64 }

// Bootstrap resamples the groups (identities) with replacement b times, recomputes stat on each
// resample, and returns the central level (e.g. 0.95) interval of the results: differences
// between methods smaller than these intervals should not be read as real. Deterministic for a
// seed.
func Bootstrap(groups []Group, stat func([]Group) float64, b int, level float64, seed uint64) Interval {
	if len(groups) == 0 || b < 2 {
		return Interval{math.NaN(), math.NaN()}
	}
	r := rand.New(rand.NewPCG(seed, 0xb007))
	vals := make([]float64, 0, b)
	sample := make([]Group, len(groups))
	for k := 0; k < b; k++ {
		for i := range sample {
			sample[i] = groups[r.IntN(len(groups))]
		}
		if v := stat(sample); !math.IsNaN(v) {
			vals = append(vals, v)
		}
	}
	if len(vals) == 0 {
		return Interval{math.NaN(), math.NaN()}
	}
	sort.Float64s(vals)
	q := func(p float64) float64 {
		i := int(math.Round(p * float64(len(vals)-1)))
		return vals[min(max(i, 0), len(vals)-1)]
	}
	tail := (1 - level) / 2
	return Interval{q(tail), q(1 - tail)}
}

// PairedGroups turns per-item values into groups of one-element vectors so that Bootstrap can
// resample identities for per-image measures such as CLIP-T: each group holds the per-image
// scores of one identity.
func PairedGroups(scores map[string][]float64, order []string) []Group {
	groups := make([]Group, 0, len(order))
	for _, id := range order {
		var g Group
		for _, s := range scores[id] {
			g = append(g, []float32{float32(s)})
		}
		groups = append(groups, g)
	}
	return groups
}

// MeanOfGroups averages the first value of every member of every group (the statistic for
// PairedGroups).
func MeanOfGroups(groups []Group) float64 {
	s, n := 0.0, 0
	for _, g := range groups {
		for _, v := range g {
			s += float64(v[0])
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return s / float64(n)
}
