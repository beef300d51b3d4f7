package text

import (
	"reflect"
	"testing"
)

func TestFit(t *testing.T) {
	const eos, pad = 9, 0
	tests := []struct {
		name      string
		ids       []int32
		maxLen    int
		pad       int32
		want      []int32
		wantEOS   int
		wantTrunc bool
	}{
		{"pad", []int32{8, 5, 9}, 5, pad, []int32{8, 5, 9, 0, 0}, 2, false},
		{"pad with eos", []int32{8, 5, 9}, 5, eos, []int32{8, 5, 9, 9, 9}, 2, false},
		{"exact", []int32{8, 5, 6, 9}, 4, pad, []int32{8, 5, 6, 9}, 3, false},
		{"truncate keeps eos", []int32{8, 5, 6, 7, 9}, 4, pad, []int32{8, 5, 6, 9}, 3, true},
		{"no eos", []int32{8, 5}, 3, pad, []int32{8, 5, 0}, -1, false},
		{"truncate without eos", []int32{8, 5, 6}, 2, pad, []int32{8, 9}, 1, true},
		{"empty", nil, 2, pad, []int32{0, 0}, -1, false},
		{"zero length", []int32{8, 9}, 0, pad, []int32{}, -1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			orig := append([]int32(nil), tc.ids...)
			got, eosIdx, trunc := Fit(tc.ids, tc.maxLen, eos, tc.pad)
			if !reflect.DeepEqual(got, tc.want) || eosIdx != tc.wantEOS || trunc != tc.wantTrunc {
				t.Errorf("Fit(%v, %d) = %v, %d, %v; want %v, %d, %v",
					tc.ids, tc.maxLen, got, eosIdx, trunc, tc.want, tc.wantEOS, tc.wantTrunc)
			}
			if !reflect.DeepEqual(tc.ids, orig) {
				t.Errorf("Fit modified its input: %v, was %v", tc.ids, orig)
			}
		})
	}
}

func TestConceptIndex(t *testing.T) {
	// "A cat's teddy bear, a cat." with the cat split into two tokens.
	enc := Encoding{
		IDs:    []int32{1, 10, 11, 12, 13, 14, 15, 16, 10, 11, 12, 17, 2},
		Words:  []string{"a", "cat", "'s", "teddy", "bear", ",", "a", "cat", "."},
		WordOf: []int{-1, 0, 1, 1, 2, 3, 4, 5, 6, 7, 7, 8, -1},
	}
	tests := []struct {
		word string
		want int
	}{
		{"cat", 2},
		{"CAT", 2},
		{" a ", 1},
		{"teddy bear", 5},
		{"bear", 6},
		{"dog", -1},
		{"", -1},
		{"bear a", -1},
	}
	for _, tc := range tests {
		if got := ConceptIndex(enc, tc.word); got != tc.want {
			t.Errorf("ConceptIndex(%q) = %d, want %d", tc.word, got, tc.want)
		}
	}
}
