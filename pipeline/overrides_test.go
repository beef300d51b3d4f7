package pipeline

import (
	"strings"
	"testing"
)

func TestOverrides(t *testing.T) {
	text := "name: t\nstages:\n  - id: a\n    uses: test-numbers\n    with: {count: 100}\n  - id: b\n    uses: test-numbers\n"
	set := func(s ...string) []Override {
		var out []Override
		for _, x := range s {
			o, err := ParseOverride(x)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, o)
		}
		return out
	}
	cfg, err := ParseConfig("test.yaml", []byte(text), set("a.count=7", "b.tag=c", "b.shard_size=3")...)
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Stages[0].Params.(*numbersParams), cfg.Stages[1].Params.(*numbersParams)
	if a.Count != 7 || b.Tag != "c" || b.ShardSize != 3 || b.Count != 100 {
		t.Fatalf("after overrides: a %+v, b %+v", a, b)
	}
	for _, c := range []struct{ set, want string }{
		{"nope.count=1", `--set nope.count=1: the config has no stage "nope"`},
		{"a.count=many", `stage "a": parameter "count": want an integer, got "many"`},
		{"a.cuont=1", `stage "a": unknown parameter "cuont"`},
	} {
		if _, err := ParseConfig("test.yaml", []byte(text), set(c.set)...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: want an error containing %q, got %v", c.set, c.want, err)
		}
	}
	for _, s := range []string{"count=1", "a.count", ".count=1", "a.=1"} {
		if _, err := ParseOverride(s); err == nil {
			t.Errorf("ParseOverride(%q): want an error", s)
		}
	}
}
