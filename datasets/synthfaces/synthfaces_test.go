package synthfaces

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
)

func mustWorld(t testing.TB, cfg Config) *World {
	t.Helper()
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func mustRender(t testing.TB, w *World, id, idx int) Sample {
	t.Helper()
	s, err := w.Render(id, idx)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Identities: 3, ImagesPerIdentity: 2}
	tests := []struct {
		name  string
		edit  func(*Config)
		field string // "" means valid
	}{
		{"defaults", func(c *Config) {}, ""},
		{"size 128 pets", func(c *Config) { c.Size, c.Classes = 128, PetClasses }, ""},
		{"zero identities", func(c *Config) { c.Identities = 0 }, "Config.Identities"},
		{"negative images", func(c *Config) { c.ImagesPerIdentity = -1 }, "Config.ImagesPerIdentity"},
		{"size too small", func(c *Config) { c.Size = 24 }, "Config.Size"},
		{"size too large", func(c *Config) { c.Size = 136 }, "Config.Size"},
		{"size not multiple of 8", func(c *Config) { c.Size = 36 }, "Config.Size"},
		{"unknown class", func(c *Config) { c.Classes = []string{"man", "horse"} }, "Config.Classes[1]"},
		{"duplicate class", func(c *Config) { c.Classes = []string{"cat", "dog", "cat"} }, "Config.Classes[2]"},
		{"too many images", func(c *Config) { c.Identities, c.ImagesPerIdentity = math.MaxInt32, 2 }, "Config.Identities*ImagesPerIdentity"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			_, newErr := New(c)
			if tc.field == "" {
				if err != nil || newErr != nil {
					t.Fatalf("want valid, got Validate=%v New=%v", err, newErr)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.field+":") {
				t.Fatalf("Validate: want error naming %s, got %v", tc.field, err)
			}
			if newErr == nil || newErr.Error() != err.Error() {
				t.Fatalf("New: want %v, got %v", err, newErr)
			}
		})
	}
}

func TestNewDefaultsAndExhaustion(t *testing.T) {
	w := mustWorld(t, Config{Identities: 7, ImagesPerIdentity: 3})
	c := w.Config()
	if c.Size != DefaultSize || !slices.Equal(c.Classes, HumanClasses) {
		t.Errorf("defaults: got size %d classes %v", c.Size, c.Classes)
	}
	if w.Len() != 21 {
		t.Errorf("Len: got %d, want 21", w.Len())
	}
	for i := range 7 {
		if got, want := w.Identity(i).Class, HumanClasses[i%5]; got != want {
			t.Errorf("identity %d: class %q, want %q (round-robin)", i, got, want)
		}
	}
	if id := w.Identity(7); id.Index != -1 {
		t.Errorf("Identity(7) out of range: got index %d, want -1", id.Index)
	}
	// cats have 6 fur x 4 patterns x 3 ears x 2 snouts x 4 eye colours = 576 tuples.
	_, err := New(Config{Identities: 600, ImagesPerIdentity: 1, Classes: []string{"cat"}})
	if err == nil || !strings.Contains(err.Error(), "Config.Identities") {
		t.Errorf("600 cats: want an error naming Config.Identities, got %v", err)
	}
}

func TestRenderErrors(t *testing.T) {
	w := mustWorld(t, Config{Identities: 2, ImagesPerIdentity: 3})
	for _, tc := range []struct{ id, idx int }{{-1, 0}, {2, 0}, {0, -1}, {0, 3}} {
		if _, err := w.Render(tc.id, tc.idx); err == nil {
			t.Errorf("Render(%d, %d): want error", tc.id, tc.idx)
		}
	}
	for _, i := range []int{-1, 6} {
		if _, err := w.At(i); err == nil {
			t.Errorf("At(%d): want error", i)
		}
	}
	s, err := w.At(5)
	if err != nil || s.Identity != 1 || s.Index != 2 || s.ID != "sf-000001-02" {
		t.Errorf("At(5): got %q identity %d index %d err %v, want sf-000001-02", s.ID, s.Identity, s.Index, err)
	}
}

func TestDeterminism(t *testing.T) {
	cfg := Config{Seed: 42, Identities: 7, ImagesPerIdentity: 3, Classes: append(slices.Clone(HumanClasses), PetClasses...)}
	a, b := mustWorld(t, cfg), mustWorld(t, cfg)
	type key struct{ id, idx int }
	want := map[key]Sample{}
	for id := range 7 {
		for idx := range 3 {
			want[key{id, idx}] = mustRender(t, a, id, idx)
		}
	}
	// Reverse order, concurrently, on a second world.
	var mu sync.Mutex
	got := map[key]Sample{}
	var wg sync.WaitGroup
	for id := 6; id >= 0; id-- {
		for idx := 2; idx >= 0; idx-- {
			wg.Go(func() {
				s, err := b.Render(id, idx)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				got[key{id, idx}] = s
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	for k, w := range want {
		g := got[k]
		if !bytes.Equal(w.Image.Pix, g.Image.Pix) || !bytes.Equal(w.Mask.Pix, g.Mask.Pix) {
			t.Errorf("%s: pixels differ between runs", w.ID)
		}
		if w.ID != g.ID || w.Scene != g.Scene || !mapsEqual(w.Attributes, g.Attributes) {
			t.Errorf("%s: metadata differs: %v vs %v", w.ID, w.Attributes, g.Attributes)
		}
	}
	// A larger world keeps the first identities unchanged.
	big := cfg
	big.Identities = 20
	c := mustRender(t, mustWorld(t, big), 3, 1)
	if !bytes.Equal(c.Image.Pix, want[key{3, 1}].Image.Pix) {
		t.Errorf("identity 3 changed when the world grew")
	}
	// Another seed gives other pixels.
	other := cfg
	other.Seed = 43
	d := mustRender(t, mustWorld(t, other), 3, 1)
	if bytes.Equal(d.Image.Pix, want[key{3, 1}].Image.Pix) {
		t.Errorf("seeds 42 and 43 rendered identical images")
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestUniqueIdentities(t *testing.T) {
	for _, classes := range [][]string{HumanClasses, PetClasses} {
		w := mustWorld(t, Config{Seed: 1, Identities: 400, ImagesPerIdentity: 1, Classes: classes})
		seen := map[string]int{}
		for i := range 400 {
			id := w.Identity(i)
			k := id.fullKey()
			if j, dup := seen[k]; dup {
				t.Errorf("identities %d and %d share %s", j, i, k)
			}
			seen[k] = i
		}
	}
}

func TestAttributesAndKeys(t *testing.T) {
	w := mustWorld(t, Config{Seed: 5, Identities: 70, ImagesPerIdentity: 4, Classes: append(slices.Clone(HumanClasses), PetClasses...)})
	for _, k := range append(slices.Clone(IdentityKeys), ImageKeys...) {
		if len(Values(k)) == 0 {
			t.Errorf("Values(%q) is empty", k)
		}
	}
	if Values("nope") != nil {
		t.Errorf("Values of an unknown key: want nil")
	}
	seen := map[string]map[string]bool{}
	for i := range w.Len() {
		s, err := w.At(i)
		if err != nil {
			t.Fatal(err)
		}
		idKeys, imKeys := ClassKeys(s.Class)
		keys := append(idKeys, imKeys...)
		if len(s.Attributes) != len(keys) {
			t.Errorf("%s (%s): %d attributes, want keys %v: %v", s.ID, s.Class, len(s.Attributes), keys, s.Attributes)
		}
		for _, k := range keys {
			v, ok := s.Attributes[k]
			if !ok {
				t.Errorf("%s: missing attribute %q", s.ID, k)
				continue
			}
			if !slices.Contains(Values(k), v) {
				t.Errorf("%s: %s=%q not among Values(%q)=%v", s.ID, k, v, k, Values(k))
			}
			if seen[k] == nil {
				seen[k] = map[string]bool{}
			}
			seen[k][v] = true
		}
		if !slices.Contains(idKeys, "eye_color") || !slices.Contains(imKeys, "scene") {
			t.Errorf("%s: ClassKeys(%q) lacks eye_color or scene", s.ID, s.Class)
		}
		if s.Attributes["scene"] != s.Scene || !slices.Contains(Scenes, s.Scene) {
			t.Errorf("%s: scene %q vs attribute %q", s.ID, s.Scene, s.Attributes["scene"])
		}
		if s.Class == "woman" || s.Class == "girl" || s.Class == "boy" {
			if b := s.Attributes["beard"]; b != "none" {
				t.Errorf("%s: a %s with beard %q", s.ID, s.Class, b)
			}
		}
	}
	// Every key of IdentityKeys and ImageKeys is used, and most values show up.
	for _, k := range append(slices.Clone(IdentityKeys), ImageKeys...) {
		if len(seen[k]) < 2 {
			t.Errorf("key %q: only values %v seen in 280 images", k, seen[k])
		}
	}
	if len(seen["scene"]) != len(Scenes) {
		t.Errorf("scenes seen: %v, want all %d", seen["scene"], len(Scenes))
	}
}
