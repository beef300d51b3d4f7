package cocoins

import (
	"fmt"

	"github.com/cocoflow/cocoflow/models/text/prompt"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Captions gathers one side of a Batch on the host (P1 or P2 of each triplet): the padded
// token ids, the plan inserting one pseudo-word before the concept word, and the EOS index
// before and after that insertion. Its fields fill Batch.IDs*, Ins*, EOS* and EOS*w.
type Captions struct {
	maxLen int
	pad    int32

	IDs   []int32       // [B·L] token ids, padded to L
	Plans []prompt.Plan // one plan per caption
	EOS   []int32       // EOS index as tokenized
	EOSw  []int32       // EOS index after the insertion
}

// NewCaptions starts an empty side for sequences of maxLen tokens padded with pad.
func NewCaptions(maxLen int, pad int32) *Captions {
	return &Captions{maxLen: maxLen, pad: pad}
}

// Add appends one caption: ids are its token ids BOS … EOS (unpadded), concept the index of
// the concept word that the pseudo-word goes before.
func (c *Captions) Add(ids []int32, concept int) error {
	if len(ids) > c.maxLen {
		return fmt.Errorf("%d token ids, more than the encoder's %d", len(ids), c.maxLen)
	}
	plan, err := prompt.NewPlan(c.maxLen, len(ids)-1, []int{concept}, c.maxLen)
	if err != nil {
		return err
	}
	c.IDs = append(c.IDs, ids...)
	for range c.maxLen - len(ids) {
		c.IDs = append(c.IDs, c.pad)
	}
	c.Plans = append(c.Plans, plan)
	c.EOS = append(c.EOS, int32(len(ids)-1))
	c.EOSw = append(c.EOSw, int32(plan.EOS))
	return nil
}

// Len is the number of captions added.
func (c *Captions) Len() int { return len(c.Plans) }

// Tensors returns, in Batch order, the ids [B, L], the one-hot insertion [B, L, L+1], and
// the EOS indices before and after the insertion ([B] each).
func (c *Captions) Tensors() (ids, ins *tensors.Tensor, eos, eosW []int32) {
	B, L := c.Len(), c.maxLen
	return tensors.FromFlatDataAndDimensions(c.IDs, B, L),
		tensors.FromFlatDataAndDimensions(prompt.OneHot(c.Plans, L, 1), B, L, L+1),
		c.EOS, c.EOSw
}
