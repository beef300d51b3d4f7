package tiny

import (
	"flag"
	"slices"
	"strings"
	"testing"

	"github.com/cocoflow/cocoflow/datasets/captioner"
	"github.com/cocoflow/cocoflow/models/text"
)

var update = flag.Bool("update", false, "rewrite vocab.txt from the captioner's lexicon and the extra words")

// extraWords are words of the tiny prompt sets that template captions never use.
var extraWords = []string{"and", "next", "together", "standing", "sitting", "walking", "reading", "cooking", "working", "playing", "singing", "outdoors", "indoors", "day", "night", "smiles", "person's"}

func TestVocabFile(t *testing.T) {
	words := append(captioner.NewTemplate().Lexicon(), extraWords...)
	slices.Sort(words)
	words = slices.Compact(words)
	if *update {
		wt, err := text.NewWordTokenizer(words, MaxLength)
		if err != nil {
			t.Fatal(err)
		}
		if err := wt.WriteVocab("vocab.txt"); err != nil {
			t.Fatal(err)
		}
		t.Log("vocab.txt rewritten; rebuild to embed it")
		return
	}
	tk, err := Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range words {
		if _, ok := tk.ID(w); !ok {
			t.Fatalf("word %q is missing from vocab.txt: run go test ./models/family/tiny -run TestVocabFile -update", w)
		}
	}
	enc := tk.Encode("A man is looking at the camera.")
	if enc.IDs[0] != tk.BOS() || enc.IDs[len(enc.IDs)-1] != tk.EOS() || slices.Contains(enc.IDs, tk.Unk()) {
		t.Fatalf("encoding %v has unknown words or lacks BOS/EOS", enc.IDs)
	}
	if strings.Contains(tk.Decode(enc.IDs), "<unk>") {
		t.Fatal("decode shows <unk>")
	}
}
