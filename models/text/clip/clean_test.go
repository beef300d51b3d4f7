package clip

import (
	"reflect"
	"regexp"
	"testing"
)

func TestCleanText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"  A Photo\tof\n\na  CAT  ", "a photo of a cat"},
		{"Tom &amp;amp; Jerry &lt;3 &eacute;t&eacute;", "tom & jerry <3 été"},
		{"a\u00a0b\u3000c\u2028d\u0085e", "a b c d e"},
		{"\x1c\x1fHi\x1c", "hi"},
		{"a\x1cb", "a\x1cb"},
		{"İstanbul", "i\u0307stanbul"},
		{"ΟΔΟΣ ΣΑΣ. Σ", "οδος σας. σ"},
		{"ΑΣ'Α", "ασ'α"},
		{"a\xffb", "a\ufffdb"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := cleanText(tc.in); got != tc.want {
			t.Errorf("cleanText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// clipPattern is CLIP's pre-tokenizer regex; on cleaned text (where the only whitespace left is
// the space) Go's ASCII \s agrees with Python's.
var clipPattern = regexp.MustCompile(`<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`)

func TestPreTokenizeMatchesRegex(t *testing.T) {
	texts := []string{
		"Don't stop: it's 2024 and the price is $12.50!",
		"you'll we'd they're i've i'm it's o'clock 'tis rock'n'roll",
		"x<|endoftext|>y <|startoftext|>!<|endoftext|>",
		"!!'s ''s ... ?!?",
		"naïve café 東京タワー ١٢٣ ½ ⅷ x²",
		"emoji 👩‍👩‍👧 ok👍🏽, tab\x1csep\x00nul",
		"a-b_c/d\\e (f) [g] {h} \"i\" #j @k",
		"",
	}
	for _, s := range texts {
		c := cleanText(s)
		got := preTokenize(c)
		want := clipPattern.FindAllString(c, -1)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("preTokenize(%q)\n got %q\nwant %q", c, got, want)
		}
	}
}

func TestByteSymbols(t *testing.T) {
	sym, order := byteSymbols()
	seen := map[rune]bool{}
	for b, r := range sym {
		if seen[r] {
			t.Fatalf("byte 0x%02x: character %q used twice", b, r)
		}
		seen[r] = true
	}
	checks := []struct {
		b    byte
		want rune
	}{{'a', 'a'}, {'!', '!'}, {0, 'Ā'}, {' ', 'Ġ'}, {'\n', 'Ċ'}, {0xAD, 'Ń'}, {0xFF, 'ÿ'}}
	for _, c := range checks {
		if sym[c.b] != c.want {
			t.Errorf("byte 0x%02x -> %q, want %q", c.b, sym[c.b], c.want)
		}
	}
	if order[0] != '!' || order[93] != '~' || order[187] != 0xFF || order[188] != 0 || order[255] != 0xAD {
		t.Errorf("order = %v, want '!'..'~', 0xA1..0xAC, 0xAE..0xFF, then 0x00.. 0xAD", order)
	}
}
