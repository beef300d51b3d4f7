package text

import (
	"encoding/json"
	"fmt"
	"io"
)

// WriteJSONLines writes one JSON object per text to w, {"text":..., "ids":[...]}, with the ids of
// tok.Encode (BOS and EOS included, no padding). When maxLen is positive, longer sequences are
// truncated to maxLen keeping EOS as the last id. It returns the first write error, naming the
// text's index.
func WriteJSONLines(w io.Writer, tok Tokenizer, texts []string, maxLen int) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i, s := range texts {
		ids := tok.Encode(s).IDs
		if maxLen > 0 && len(ids) > maxLen {
			ids, _, _ = Fit(ids, maxLen, tok.EOS(), tok.Pad())
		}
		line := struct {
			Text string  `json:"text"`
			IDs  []int32 `json:"ids"`
		}{s, ids}
		if err := enc.Encode(line); err != nil {
			return fmt.Errorf("write token ids of text %d: %w", i, err)
		}
	}
	return nil
}
