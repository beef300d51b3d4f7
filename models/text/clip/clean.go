package clip

import (
	"html"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The special tokens of CLIP's vocabulary.
const (
	StartOfText = "<|startoftext|>"
	EndOfText   = "<|endoftext|>"
)

// byteSymbols returns CLIP's (and GPT-2's) reversible byte-to-character table: the printable
// bytes '!'..'~', '¡'..'¬', '®'..'ÿ' stand for themselves and every other byte b gets the
// character 256+n, n counting those bytes in increasing order. order lists the bytes in the
// order the OpenAI vocabulary enumerates them: the printable ranges first, then the rest.
func byteSymbols() (sym [256]rune, order [256]byte) {
	printable := func(b int) bool {
		return ('!' <= b && b <= '~') || (0xA1 <= b && b <= 0xAC) || (0xAE <= b && b <= 0xFF)
	}
	k, n := 0, 0
	for b := 0; b < 256; b++ {
		if printable(b) {
			sym[b] = rune(b)
			order[k] = byte(b)
			k++
		}
	}
	for b := 0; b < 256; b++ {
		if !printable(b) {
			sym[b] = rune(256 + n)
			order[k] = byte(b)
			k++
			n++
		}
	}
	return sym, order
}

// pyStripSpace reports whether Python's str.isspace holds for r, which decides what str.strip
// removes from the ends of the text: Unicode White_Space (Go's unicode.IsSpace) plus the
// separators U+001C..U+001F.
func pyStripSpace(r rune) bool {
	return unicode.IsSpace(r) || (0x1C <= r && r <= 0x1F)
}

// cleanText is OpenAI CLIP's text cleanup without ftfy: invalid UTF-8 becomes U+FFFD, HTML
// entities are unescaped twice, the ends are stripped (str.strip), runs of whitespace (the regex
// module's \s, Unicode White_Space) collapse to one space, and the text is lower-cased as
// Python's str.lower does.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.IndexByte(s, '&') >= 0 {
		s = html.UnescapeString(html.UnescapeString(s))
	}
	s = strings.TrimFunc(s, pyStripSpace)
	s = strings.Join(strings.FieldsFunc(s, unicode.IsSpace), " ")
	return pyLower(s)
}

// pyLower lower-cases s like Python's str.lower: Go's simple case mapping, plus the two full
// mappings that differ from it: U+0130 becomes "i̇" and a capital sigma at the end of a word
// becomes the final sigma ς.
func pyLower(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range s {
		switch r {
		case 'İ':
			b.WriteString("i\u0307")
		case 'Σ':
			if finalSigma(s, i) {
				b.WriteRune('ς')
			} else {
				b.WriteRune('σ')
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// finalSigma applies Unicode's Final_Sigma condition to the capital sigma at byte i of s: a
// cased letter before it and none after it, skipping case-ignorable characters both ways.
func finalSigma(s string, i int) bool {
	before := false
	for j := i; j > 0; {
		r, n := utf8.DecodeLastRuneInString(s[:j])
		j -= n
		if !caseIgnorable(r) {
			before = cased(r)
			break
		}
	}
	if !before {
		return false
	}
	for _, r := range s[i+len("Σ"):] {
		if !caseIgnorable(r) {
			return !cased(r)
		}
	}
	return true
}

func cased(r rune) bool {
	return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) ||
		unicode.Is(unicode.Other_Lowercase, r) || unicode.Is(unicode.Other_Uppercase, r)
}

func caseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', '·', '\u2018', '\u2019', '\u2024', '\uFE52', '\uFE55', '\uFF07', '\uFF0E', '\uFF1A', '\u00AD', '\u0387', '\u05F4', '\u2027':
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}

// contractions are the suffixes CLIP's pre-tokenizer splits off, in its regex's order.
var contractions = [...]string{"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"}

// preTokenize splits cleaned text as CLIP's regex does,
//
//	<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//
// leftmost-first, skipping what no alternative matches (whitespace). It returns the pieces as
// substrings of s.
func preTokenize(s string) []string {
	var out []string
	i := 0
next:
	for i < len(s) {
		rest := s[i:]
		for _, p := range [...]string{StartOfText, EndOfText} {
			if strings.HasPrefix(rest, p) {
				out = append(out, p)
				i += len(p)
				continue next
			}
		}
		for _, c := range contractions {
			if strings.HasPrefix(rest, c) {
				out = append(out, c)
				i += len(c)
				continue next
			}
		}
		r, n := utf8.DecodeRuneInString(rest)
		switch {
		case unicode.IsLetter(r):
			end := n
			for end < len(rest) {
				r2, n2 := utf8.DecodeRuneInString(rest[end:])
				if !unicode.IsLetter(r2) {
					break
				}
				end += n2
			}
			out = append(out, rest[:end])
			i += end
		case unicode.IsNumber(r):
			out = append(out, rest[:n])
			i += n
		case unicode.IsSpace(r):
			i += n
		default:
			end := n
			for end < len(rest) {
				r2, n2 := utf8.DecodeRuneInString(rest[end:])
				if unicode.IsLetter(r2) || unicode.IsNumber(r2) || unicode.IsSpace(r2) {
					break
				}
				end += n2
			}
			out = append(out, rest[:end])
			i += end
		}
	}
	return out
}
