package cocoins

import (
	"slices"
	"strings"
	"testing"
)

// TestCaptions: ids are padded to L, the plan puts the pseudo-word before the concept word and
// moves EOS by one, and a caption longer than L is refused.
func TestCaptions(t *testing.T) {
	const L, pad = 6, 99
	c := NewCaptions(L, pad)
	if err := c.Add([]int32{1, 7, 8, 2}, 2); err != nil { // BOS a CONCEPT EOS
		t.Fatal(err)
	}
	if err := c.Add([]int32{1, 5, 2}, 1); err != nil { // BOS CONCEPT EOS
		t.Fatal(err)
	}
	ids, ins, eos, eosW := c.Tensors()
	if want := []int32{1, 7, 8, 2, pad, pad, 1, 5, 2, pad, pad, pad}; !slices.Equal(c.IDs, want) {
		t.Errorf("ids %v, want %v", c.IDs, want)
	}
	if !slices.Equal(ids.Shape().Dimensions, []int{2, L}) || !slices.Equal(ins.Shape().Dimensions, []int{2, L, L + 1}) {
		t.Errorf("shapes %v %v", ids.Shape(), ins.Shape())
	}
	if !slices.Equal(eos, []int32{3, 2}) || !slices.Equal(eosW, []int32{4, 3}) {
		t.Errorf("eos %v eosW %v, want [3 2] [4 3]", eos, eosW)
	}
	// Output position 2 of caption 0 takes the pseudo-word (source L), position 3 the concept (source 2).
	oh := ins.Value().([][][]float32)
	if oh[0][2][L] != 1 || oh[0][3][2] != 1 || oh[1][1][L] != 1 || oh[1][2][1] != 1 {
		t.Errorf("insertion one-hot wrong: %v", oh)
	}
	err := c.Add([]int32{1, 3, 3, 3, 3, 3, 2}, 1)
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("7 ids into L=6: err %v", err)
	}
	if c.Len() != 2 {
		t.Errorf("a refused caption was kept: len %d", c.Len())
	}
}
