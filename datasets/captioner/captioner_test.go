package captioner

import "testing"

func TestFindConcept(t *testing.T) {
	all := []string{"man", "woman", "boy", "girl", "person", "cat", "dog"}
	tests := []struct {
		name       string
		text       string
		candidates []string
		word       string
		start      int
		ok         bool
	}{
		{"simple", "a photo of a man.", all, "man", 13, true},
		{"woman is not man", "a woman in a park.", all, "woman", 2, true},
		{"man not inside woman", "a woman in a park.", []string{"man"}, "", -1, false},
		{"womanhood", "womanhood and manhood", all, "", -1, false},
		{"case-insensitive", "A Man walks.", all, "man", 2, true},
		{"upper case candidate", "a man walks.", []string{"MAN"}, "MAN", 2, true},
		{"order of appearance wins over candidate order", "a dog and a man", []string{"man", "dog"}, "dog", 2, true},
		{"first occurrence", "man, man and man", []string{"man"}, "man", 0, true},
		{"at the end", "this is a cat", all, "cat", 10, true},
		{"before punctuation", "look: a girl, smiling", all, "girl", 8, true},
		{"possessive", "a dog's face", all, "dog", 2, true},
		{"hyphenated", "a cat-like dog", []string{"dog", "cat"}, "cat", 2, true},
		{"digits are word characters", "man2 and man", []string{"man"}, "man", 9, true},
		{"inside word after letters", "catalog of boys", all, "", -1, false},
		{"after multibyte rune", "«man»", all, "man", 2, true},
		{"multibyte letter glued", "émman", []string{"man"}, "", -1, false},
		{"multi-word candidate", "an old man", []string{"old man"}, "old man", 3, true},
		{"empty candidate ignored", "a man", []string{"", "man"}, "man", 2, true},
		{"no candidates", "a man", nil, "", -1, false},
		{"empty text", "", all, "", -1, false},
		{"shorter candidate is a prefix", "a manatee", []string{"man", "manatee"}, "manatee", 2, true},
		{"tie: earlier candidate", "a man", []string{"Man", "man"}, "Man", 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			word, start, ok := FindConcept(tt.text, tt.candidates)
			if word != tt.word || start != tt.start || ok != tt.ok {
				t.Fatalf("FindConcept(%q, %q) = %q, %d, %v; want %q, %d, %v",
					tt.text, tt.candidates, word, start, ok, tt.word, tt.start, tt.ok)
			}
		})
	}
}

func TestCleanText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"  A man  in a\n\tpark. ", "A man in a park."},
		{`"A man in a park."`, "A man in a park."},
		{`' "A man." '`, "A man."},
		{"“A woman smiling.”", "A woman smiling."},
		{"`a cat`", "a cat"},
		{`"`, `"`},
		{`"A man" said`, `"A man" said`},
		{"", ""},
		{`""`, ""},
	}
	for _, tt := range tests {
		if got := cleanText(tt.in); got != tt.want {
			t.Errorf("cleanText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
