package tiny

import (
	_ "embed"
	"fmt"
	"strings"
	"sync"

	"github.com/cocoflow/cocoflow/models/text"
)

// MaxLength is the tiny text encoder's number of token positions (BOS and EOS included). The
// longest template caption is 23 tokens; the rest leaves room for pseudo-words.
const MaxLength = 32

// vocab is the tiny family's word vocabulary: the specials, then every word the template
// captioner and the tiny prompt sets can produce (regenerate with
// `go test ./models/family/tiny -run TestVocabFile -update`).
//
//go:embed vocab.txt
var vocab string

var (
	tokOnce sync.Once
	tok     *text.WordTokenizer
	tokErr  error
)

// Tokenizer returns the tiny family's word tokenizer.
func Tokenizer() (*text.WordTokenizer, error) {
	tokOnce.Do(func() {
		lines := strings.Split(strings.TrimRight(vocab, "\n"), "\n")
		if len(lines) < 4 {
			tokErr = fmt.Errorf("tiny vocabulary is empty")
			return
		}
		tok, tokErr = text.NewWordTokenizer(lines[4:], MaxLength)
	})
	return tok, tokErr
}
