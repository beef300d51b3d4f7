package prompts

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cocoflow/cocoflow/datasets/phrases"
	"github.com/cocoflow/cocoflow/datasets/synthfaces"
	"github.com/cocoflow/cocoflow/models/family/tiny"
)

var update = flag.Bool("update", false, "rewrite data/*.tsv from gen.go")

// TestDataUpToDate checks that every embedded file is what gen.go writes (with -update it
// rewrites them instead).
func TestDataUpToDate(t *testing.T) {
	for _, name := range Names() {
		ps, err := generate(name)
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		if err := Write(&want, ps); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		path := filepath.Join("data", name+".tsv")
		if *update {
			if err := os.WriteFile(path, want.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s (%d prompts); rebuild to embed it", path, len(ps))
			continue
		}
		got, err := data.ReadFile("data/" + name + ".tsv")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%s is stale: run go test ./datasets/prompts -run TestDataUpToDate -update", path)
		}
	}
}

// TestCounts checks the structure of each set: subjects, settings and prompts per cell.
func TestCounts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings []string
		perCell  int
	}{
		{"portraits", []string{SettingPortrait}, 200},
		{"tiny-portraits", []string{SettingPortrait}, 200},
		{"scenes", Settings, 50},
		{"tiny-scenes", Settings, 50},
	} {
		ps, err := Load(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 1000 {
			t.Errorf("%s: %d prompts, want 1000", tc.name, len(ps))
		}
		cells := map[string]int{}
		for _, p := range ps {
			cells[p.Subject+"/"+p.Setting]++
		}
		for _, s := range Subjects {
			for _, st := range tc.settings {
				if n := cells[s+"/"+st]; n != tc.perCell {
					t.Errorf("%s: %s/%s has %d prompts, want %d", tc.name, s, st, n, tc.perCell)
				}
			}
		}
		if want := len(Subjects) * len(tc.settings); len(cells) != want {
			t.Errorf("%s: %d (subject, setting) cells, want %d", tc.name, len(cells), want)
		}
	}
	for _, name := range []string{"multi", "tiny-multi"} {
		ps, err := Load(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) < 8 || len(ps) > 12 {
			t.Errorf("%s: %d prompts, want about 10", name, len(ps))
		}
	}
}

// TestPortraitText checks the portrait sets are exactly the paper's template.
func TestPortraitText(t *testing.T) {
	for name, tmpl := range map[string]string{
		"portraits":      "A %s is looking at the camera.",
		"tiny-portraits": "a %s is looking at the camera.",
	} {
		ps, err := Load(name)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range ps {
			if want := fmt.Sprintf(tmpl, p.Subject); p.Text != want {
				t.Fatalf("%s row %d: %q, want %q", name, i+1, p.Text, want)
			}
		}
	}
}

// otherPeople are words that would bring a second person into a single-subject prompt.
var otherPeople = []string{"men", "women", "boys", "girls", "people", "persons", "child", "children", "kid", "kids",
	"son", "daughter", "mother", "father", "friend", "friends", "baby", "lady", "guy", "student", "students"}

// TestSubjectOnce checks every single-subject prompt names its subject exactly once as a word,
// no other subject word and nobody else; multi-subject prompts name each concept once.
func TestSubjectOnce(t *testing.T) {
	for _, name := range Names() {
		ps, err := Load(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			concepts := p.Concepts()
			for _, s := range append(slices.Clone(Subjects), otherPeople...) {
				want := 0
				if slices.Contains(concepts, s) {
					want = 1
				}
				if n := countWord(p.Text, s); n != want {
					t.Errorf("%s: %q: %q occurs %d times, want %d", name, p.Text, s, n, want)
				}
			}
			if len(concepts) != 1 && !strings.Contains(name, "multi") {
				t.Errorf("%s: %q: subject %q, want one concept", name, p.Text, p.Subject)
			}
			if strings.Contains(name, "multi") && len(concepts) != 2 {
				t.Errorf("%s: %q: subject %q, want two concepts", name, p.Text, p.Subject)
			}
		}
	}
}

// TestNoDuplicates checks the scene and multi sets never repeat a prompt.
func TestNoDuplicates(t *testing.T) {
	for _, name := range []string{"scenes", "tiny-scenes", "multi", "tiny-multi"} {
		ps, err := Load(name)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for i, p := range ps {
			if j, dup := seen[p.Text]; dup {
				t.Errorf("%s: rows %d and %d are both %q", name, j+1, i+1, p.Text)
			}
			seen[p.Text] = i
		}
	}
}

// TestSituationsDistinct checks the scene banks hold 50 different situations per setting
// (200 in all), each usable in both verb forms.
func TestSituationsDistinct(t *testing.T) {
	acts := map[string]string{}
	for _, setting := range Settings {
		bank := situations(setting)
		if len(bank) != perSetting {
			t.Errorf("%s: %d situations, want %d", setting, len(bank), perSetting)
		}
		for i, s := range bank {
			if prev, dup := acts[s.act]; dup {
				t.Errorf("%s %d: situation %q repeats one of %s", setting, i+1, s.act, prev)
			}
			acts[s.act] = setting
			if s.kidAct == "" && s.kidDetail != "" {
				t.Errorf("%s %d: kid detail %q without a kid act", setting, i+1, s.kidDetail)
			}
			for _, tmpl := range []string{s.act, s.detail, s.kidAct, s.kidDetail} {
				for _, f := range []verbForm{simple, continuous} {
					if _, err := expand(tmpl, f, "person"); err != nil {
						t.Errorf("%s %d: %v", setting, i+1, err)
					}
				}
			}
			if !strings.HasPrefix(s.act, "{") || (s.kidAct != "" && !strings.HasPrefix(s.kidAct, "{")) {
				t.Errorf("%s %d: %q: want the act to start with its verb {simple|continuous}", setting, i+1, s.act)
			}
		}
	}
	if len(acts) != 4*perSetting {
		t.Errorf("%d distinct situations, want %d", len(acts), 4*perSetting)
	}
}

func TestExpand(t *testing.T) {
	for _, tc := range []struct {
		tmpl    string
		form    verbForm
		subject string
		want    string
		wantErr bool
	}{
		{"{reads|reading} {p} book", simple, "woman", "reads her book", false},
		{"{reads|reading} {p} book", continuous, "person", "reading their book", false},
		{"{sits|sitting} and {eats|eating}", continuous, "boy", "sitting and eating", false},
		{"no placeholders", simple, "man", "no placeholders", false},
		{"{reads|reading", simple, "man", "", true},
		{"{x} here", simple, "man", "", true},
		{"{a|b|c}", simple, "man", "", true},
		{"{|reading}", simple, "man", "", true},
		{"stray } brace", simple, "man", "", true},
	} {
		got, err := expand(tc.tmpl, tc.form, tc.subject)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("expand(%q, %d, %s) = %q, %v; want %q, error %v", tc.tmpl, tc.form, tc.subject, got, err, tc.want, tc.wantErr)
		}
	}
}

var badArticle = regexp.MustCompile(`(?i)\b(a [aeiou]|an [^aeioux])`) // "an x-ray" is right

// TestSceneStyle checks length bounds, sentence form, articles, and that the frames vary.
func TestSceneStyle(t *testing.T) {
	ps, err := Load("scenes")
	if err != nil {
		t.Fatal(err)
	}
	starts := map[string]map[string]bool{}
	forms := map[string]int{}
	maxWords := 0
	for _, p := range ps {
		w := strings.Fields(p.Text)
		maxWords = max(maxWords, len(w))
		if len(w) < 6 || len(w) > maxSceneWords {
			t.Errorf("%q: %d words, want 6..%d", p.Text, len(w), maxSceneWords)
		}
		if !strings.HasSuffix(p.Text, ".") || p.Text[0] < 'A' || p.Text[0] > 'Z' {
			t.Errorf("%q: want a capitalised sentence ending in a period", p.Text)
		}
		if m := badArticle.FindString(p.Text); m != "" {
			t.Errorf("%q: wrong article in %q", p.Text, m)
		}
		if starts[p.Subject] == nil {
			starts[p.Subject] = map[string]bool{}
		}
		starts[p.Subject][strings.Join(w[:2], " ")] = true
		if strings.Contains(p.Text, " "+p.Subject+" is ") {
			forms["continuous"]++
		} else {
			forms["other"]++
		}
	}
	for s, st := range starts {
		if len(st) < 5 {
			t.Errorf("%s: only %d distinct openings %v, want varied frames", s, len(st), st)
		}
	}
	if forms["continuous"] < 100 || forms["other"] < 500 {
		t.Errorf("verb forms %v: want both present continuous and other frames", forms)
	}
	t.Logf("scenes: longest prompt %d words; forms %v", maxWords, forms)
}

// adultOnly are words no boy or girl prompt may contain.
var adultOnly = []string{"contract", "negotiat", "wine", "toast", "cocktail", "beer", "bar ", "boardroom", "night shift", "lecture", "forklift", "welds", "welding"}

func TestChildrenAppropriate(t *testing.T) {
	ps, err := Load("scenes")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if !isKid(p.Subject) {
			continue
		}
		low := strings.ToLower(p.Text)
		for _, w := range adultOnly {
			if strings.Contains(low, w) {
				t.Errorf("%q: a child prompt containing %q", p.Text, w)
			}
		}
	}
}

// identityWords name what a subject code should decide in the tiny world.
var identityWords = []string{"hair", "skin", "eyes", "eye", "face", "beard", "bearded", "bald", "stubble", "moustache",
	"goatee", "clean-shaven", "eyebrows", "nose", "mouth", "blond", "bob", "bun", "curly", "spiky"}

// TestTinyVocabulary checks every tiny prompt encodes without <unk> in the tiny tokenizer,
// leaves room for pseudo-words, and names no identity attribute.
func TestTinyVocabulary(t *testing.T) {
	tk, err := tiny.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	maxTokens := 0
	for _, name := range []string{"tiny-portraits", "tiny-scenes", "tiny-multi"} {
		ps, err := Load(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			enc := tk.Encode(p.Text)
			maxTokens = max(maxTokens, len(enc.IDs))
			for i, id := range enc.IDs {
				if id == tk.Unk() {
					t.Errorf("%s: %q: word %q is not in the tiny vocabulary", name, p.Text, enc.Words[enc.WordOf[i]])
				}
			}
			// BOS, words, EOS, plus one pseudo-word per concept and some slack.
			if limit := tiny.MaxLength - 8; len(enc.IDs) > limit {
				t.Errorf("%s: %q: %d tokens, want at most %d", name, p.Text, len(enc.IDs), limit)
			}
			if len(enc.Words) < 5 {
				t.Errorf("%s: %q: %d words, want at least 5", name, p.Text, len(enc.Words))
			}
			for _, w := range enc.Words {
				if slices.Contains(identityWords, w) {
					t.Errorf("%s: %q names the identity attribute %q", name, p.Text, w)
				}
			}
			if p.Text != strings.ToLower(p.Text) || !strings.HasSuffix(p.Text, ".") {
				t.Errorf("%s: %q: want a lower-case caption ending in a period", name, p.Text)
			}
			if m := badArticle.FindString(p.Text); m != "" {
				t.Errorf("%s: %q: wrong article in %q", name, p.Text, m)
			}
		}
	}
	t.Logf("tiny sets: longest prompt %d tokens (BOS and EOS included), limit %d", maxTokens, tiny.MaxLength)
}

// TestTinyScenesCoverScenes checks each tiny setting uses the synthfaces scenes it maps to and
// that the (subject, setting) cells are varied.
func TestTinyScenesCoverScenes(t *testing.T) {
	ps, err := Load("tiny-scenes")
	if err != nil {
		t.Fatal(err)
	}
	uses := map[string]map[string]int{}
	for _, p := range ps {
		for _, scene := range synthfaces.Scenes {
			for _, ph := range phrases.Scene(scene) {
				if strings.Contains(p.Text, ph) {
					if uses[p.Setting] == nil {
						uses[p.Setting] = map[string]int{}
					}
					uses[p.Setting][scene]++
				}
			}
		}
	}
	for setting, places := range tinySettings {
		for _, pl := range places {
			if n := uses[setting][pl.scene]; n < 50 {
				t.Errorf("tiny-scenes %s: scene %s used %d times, want >= 50", setting, pl.scene, n)
			}
		}
		if len(uses[setting]) != len(places) {
			t.Errorf("tiny-scenes %s: scenes %v, want exactly those of %v", setting, uses[setting], places)
		}
	}
}
