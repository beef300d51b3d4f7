// Package phrases is the English that the tiny world's text is made of, shared by the template
// captioner (datasets/captioner) and the prompt sets (datasets/prompts): the ways to say where
// a synthfaces scene is, and the article a word takes. One bank, so that captions and prompts
// say a scene alike and the tiny tokenizer's vocabulary, built from both, covers both.
package phrases

import "strings"

// scenes are the ways to say where each synthfaces scene is.
var scenes = map[string][]string{
	"park":    {"in a park", "in the park"},
	"beach":   {"at the beach", "on a beach"},
	"office":  {"in an office", "at the office"},
	"kitchen": {"in a kitchen", "in the kitchen"},
	"street":  {"on a street", "on the street"},
	"forest":  {"in a forest", "in the woods"},
	"stage":   {"on a stage", "on stage"},
	"library": {"in a library", "in the library"},
}

// Scene returns the ways to say that the subject is in scene (case and spacing do not matter):
// two for each synthfaces scene, "in a <scene>" for any other, nil for none. The slice is
// shared: callers must not modify it.
func Scene(scene string) []string {
	scene = strings.ToLower(strings.Join(strings.Fields(scene), " "))
	if scene == "" {
		return nil
	}
	if p, ok := scenes[scene]; ok {
		return p
	}
	return []string{"in " + WithArticle(scene)}
}

// Article returns "an" before a word starting with a vowel letter and "a" otherwise.
func Article(next string) string {
	if next != "" && strings.ContainsRune("aeiou", rune(next[0])) {
		return "an"
	}
	return "a"
}

// WithArticle returns "a word" or "an word".
func WithArticle(word string) string { return Article(word) + " " + word }
