package tinyface

import (
	"fmt"
	"math"
	"slices"
	"sort"
)

// Report holds the verification numbers of an identity encoder on a labelled image set
// (normally held-out identities): every unordered pair of images is a same-identity or a
// different-identity pair.
type Report struct {
	Images     int `json:"images"`
	Identities int `json:"identities"`
	SamePairs  int `json:"same_pairs"`
	DiffPairs  int `json:"diff_pairs"`

	SameCos float64 `json:"same_cos"` // mean cosine of same-identity pairs
	DiffCos float64 `json:"diff_cos"` // mean cosine of different-identity pairs
	Gap     float64 `json:"gap"`      // SameCos − DiffCos

	AUC float64 `json:"auc"` // ROC AUC of "same identity" by cosine
	// VerifyAcc is the balanced verification accuracy ((TPR + TNR) / 2) at the best threshold:
	// pairs are mostly different-identity, so plain accuracy would reward saying "different".
	VerifyAcc float64 `json:"verify_acc"`
	Threshold float64 `json:"threshold"` // cosine threshold of VerifyAcc (same if cos ≥ threshold)

	// FaceSim and FaceDiv are the paper's §4.2 metrics computed on the true identities: the
	// reference row a generator is compared against.
	FaceSim float64 `json:"face_sim"`
	FaceDiv float64 `json:"face_div"`
}

// String formats the report on one line.
func (r Report) String() string {
	return fmt.Sprintf("images=%d identities=%d same_cos=%.3f diff_cos=%.3f gap=%.3f auc=%.4f verify_acc=%.4f@%.3f face_sim=%.3f face_div=%.3f",
		r.Images, r.Identities, r.SameCos, r.DiffCos, r.Gap, r.AUC, r.VerifyAcc, r.Threshold, r.FaceSim, r.FaceDiv)
}

// Evaluate embeds data's images with m and returns the verification report over all pairs. It
// returns an error if images and labels differ in number, there are fewer than two identities
// or no same-identity pair, or embedding fails.
func Evaluate(m *Model, data Data) (Report, error) {
	if len(data.Images) != len(data.Labels) {
		return Report{}, fmt.Errorf("tinyface.Evaluate: %d images but %d labels", len(data.Images), len(data.Labels))
	}
	emb, err := m.Embed(data.Images)
	if err != nil {
		return Report{}, fmt.Errorf("tinyface.Evaluate: %w", err)
	}
	return Verify(emb, data.Labels)
}

// Verify computes the Report of unit-norm embeddings emb with identity labels. It returns an
// error if the lengths differ, there are fewer than two identities, or no identity has two images.
func Verify(emb [][]float32, labels []int) (Report, error) {
	if len(emb) != len(labels) {
		return Report{}, fmt.Errorf("verify: %d embeddings but %d labels", len(emb), len(labels))
	}
	type pair struct {
		cos  float64
		same bool
	}
	pairs := make([]pair, 0, len(emb)*(len(emb)-1)/2)
	var r Report
	var sameSum, diffSum float64
	for i := range emb {
		for j := i + 1; j < len(emb); j++ {
			c := Cosine(emb[i], emb[j])
			same := labels[i] == labels[j]
			pairs = append(pairs, pair{c, same})
			if same {
				r.SamePairs++
				sameSum += c
			} else {
				r.DiffPairs++
				diffSum += c
			}
		}
	}
	if r.SamePairs == 0 || r.DiffPairs == 0 {
		return Report{}, fmt.Errorf("verify: %d same-identity and %d different-identity pairs, want at least one of each", r.SamePairs, r.DiffPairs)
	}
	r.Images = len(emb)
	r.SameCos, r.DiffCos = sameSum/float64(r.SamePairs), diffSum/float64(r.DiffPairs)
	r.Gap = r.SameCos - r.DiffCos

	// Sort by descending cosine; sweep the threshold down through the scores.
	sort.Slice(pairs, func(a, b int) bool { return pairs[a].cos > pairs[b].cos })
	var tp, fp, aucSum float64
	P, N := float64(r.SamePairs), float64(r.DiffPairs)
	r.VerifyAcc, r.Threshold = 0.5, math.Inf(1)
	for i := 0; i < len(pairs); {
		j := i
		var dtp, dfp float64
		for ; j < len(pairs) && pairs[j].cos == pairs[i].cos; j++ {
			if pairs[j].same {
				dtp++
			} else {
				dfp++
			}
		}
		aucSum += dfp * (tp + dtp/2) // negatives at this score rank below tp positives, tie half
		tp, fp = tp+dtp, fp+dfp
		if acc := (tp/P + (N-fp)/N) / 2; acc > r.VerifyAcc {
			r.VerifyAcc, r.Threshold = acc, pairs[i].cos
		}
		i = j
	}
	r.AUC = aucSum / (P * N)
	sim, div, ids, err := IdentityScores(emb, labels)
	if err != nil {
		return Report{}, err
	}
	r.FaceSim, r.FaceDiv, r.Identities = sim, div, ids
	return r, nil
}

// IdentityScores computes the paper's Face Sim and Face Div (§4.2) of embeddings grouped by
// identity: Face Sim is the mean over identities of the mean pairwise cosine within the identity
// (identities with one image are skipped), Face Div is 1 − the mean pairwise cosine between
// the identities' mean embeddings. It returns the number of identities too, and an error if the
// lengths differ, there are fewer than two identities, or none has two images.
func IdentityScores(emb [][]float32, labels []int) (faceSim, faceDiv float64, identities int, err error) {
	if len(emb) != len(labels) {
		return 0, 0, 0, fmt.Errorf("identity scores: %d embeddings but %d labels", len(emb), len(labels))
	}
	groups := map[int][]int{}
	for i, l := range labels {
		groups[l] = append(groups[l], i)
	}
	keys := slices.Sorted(func(yield func(int) bool) {
		for k := range groups {
			if !yield(k) {
				return
			}
		}
	})
	if len(keys) < 2 {
		return 0, 0, 0, fmt.Errorf("identity scores: %d identities, want at least 2", len(keys))
	}
	var simSum float64
	simN := 0
	means := make([][]float32, 0, len(keys))
	for _, k := range keys {
		idx := groups[k]
		mean := make([]float32, len(emb[idx[0]]))
		for _, i := range idx {
			for d, v := range emb[i] {
				mean[d] += v / float32(len(idx))
			}
		}
		means = append(means, mean)
		if len(idx) < 2 {
			continue
		}
		var s float64
		n := 0
		for a := range idx {
			for b := a + 1; b < len(idx); b++ {
				s += Cosine(emb[idx[a]], emb[idx[b]])
				n++
			}
		}
		simSum += s / float64(n)
		simN++
	}
	if simN == 0 {
		return 0, 0, 0, fmt.Errorf("identity scores: no identity has two images")
	}
	var divSum float64
	divN := 0
	for a := range means {
		for b := a + 1; b < len(means); b++ {
			divSum += Cosine(means[a], means[b])
			divN++
		}
	}
	return simSum / float64(simN), 1 - divSum/float64(divN), len(keys), nil
}

// Cosine returns the cosine similarity of a and b (0 if either is zero); they must have the
// same length.
func Cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}
