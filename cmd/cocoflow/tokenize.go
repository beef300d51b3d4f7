package main

import (
	"bufio"
	"math"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cocoflow/cocoflow/models/text"
	"github.com/cocoflow/cocoflow/models/text/clip"
)

func tokenizeCommand() *cli.Command {
	return &cli.Command{
		Name:  "tokenize",
		Usage: `print token ids as JSON lines {"text":..., "ids":[...]} (BOS/EOS included, no padding)`,
		Description: "--vocab takes a CLIP vocabulary (bpe_simple_vocab_16e6.txt.gz, or a folder / vocab.json /\n" +
			"merges.txt in the Hugging Face layout) or a word vocabulary of the tiny family (vocab.txt whose first\n" +
			"line is <pad>). Texts come from the arguments, or one per line from stdin when there are none.",
		ArgsUsage: "TEXT...",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "vocab", Required: true, Usage: "tokenizer vocabulary (file or folder)"},
			&cli.IntFlag{Name: "max-length", Usage: "truncate to this many ids, keeping EOS last"},
		},
		Action: func(c *cli.Context) error {
			tok, err := loadTokenizer(c.String("vocab"))
			if err != nil {
				return err
			}
			texts := c.Args().Slice()
			if len(texts) == 0 {
				sc := bufio.NewScanner(os.Stdin)
				sc.Buffer(make([]byte, 1<<20), 1<<20)
				for sc.Scan() {
					texts = append(texts, sc.Text())
				}
				if err := sc.Err(); err != nil {
					return err
				}
			}
			return text.WriteJSONLines(os.Stdout, tok, texts, c.Int("max-length"))
		},
	}
}

// loadTokenizer picks the word tokenizer for a vocab.txt starting with <pad>, CLIP BPE otherwise.
func loadTokenizer(path string) (text.Tokenizer, error) {
	if strings.HasSuffix(path, ".txt") && !strings.HasSuffix(path, "merges.txt") {
		if f, err := os.Open(path); err == nil {
			first, _ := bufio.NewReader(f).ReadString('\n')
			f.Close()
			if strings.TrimSpace(strings.TrimPrefix(first, "\ufeff")) == text.PadToken {
				// The CLI pads nothing and truncates only with --max-length, so the
				// tokenizer's own sequence limit must not get in the way.
				return text.LoadWordTokenizer(path, math.MaxInt32)
			}
		}
	}
	return clip.Load(path)
}
