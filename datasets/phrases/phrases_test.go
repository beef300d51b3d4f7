package phrases

import (
	"slices"
	"testing"

	"github.com/cocoflow/cocoflow/datasets/synthfaces"
)

// TestEverySynthfacesSceneHasItsPhrases: the bank says each scene the renderer draws in two
// ways of its own, never with the "in a <scene>" fallback.
func TestEverySynthfacesSceneHasItsPhrases(t *testing.T) {
	for _, s := range synthfaces.Scenes {
		if _, ok := scenes[s]; !ok || len(Scene(s)) != 2 {
			t.Errorf("scene %q: phrases %q, want two of its own", s, Scene(s))
		}
	}
	if len(scenes) != len(synthfaces.Scenes) {
		t.Errorf("%d scenes in the bank, synthfaces draws %d", len(scenes), len(synthfaces.Scenes))
	}
}

func TestScene(t *testing.T) {
	for scene, want := range map[string][]string{
		"beach":     {"at the beach", "on a beach"},
		" Office ":  {"in an office", "at the office"},
		"ice rink":  {"in an ice rink"},
		"train car": {"in a train car"},
		"":          nil,
	} {
		if got := Scene(scene); !slices.Equal(got, want) {
			t.Errorf("Scene(%q) = %q, want %q", scene, got, want)
		}
	}
}

func TestArticle(t *testing.T) {
	for word, want := range map[string]string{"apple": "an apple", "man": "a man", "umbrella": "an umbrella", "": "a "} {
		if got := WithArticle(word); got != want {
			t.Errorf("WithArticle(%q) = %q, want %q", word, got, want)
		}
	}
}
