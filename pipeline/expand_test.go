package pipeline

import (
	"strings"
	"testing"
)

func TestExpandEnv(t *testing.T) {
	env := map[string]string{"COCOFLOW_MODELS": "/m", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	good := map[string]string{
		"${COCOFLOW_MODELS}/sdxl":              "/m/sdxl",
		"a ${COCOFLOW_MODELS} b $x":            "a /m b $x",
		"$${COCOFLOW_MODELS}":                  "${COCOFLOW_MODELS}",
		"costs $5":                             "costs $5",
		"${COCOFLOW_MODELS}${COCOFLOW_MODELS}": "/m/m",
	}
	for in, want := range good {
		got, err := ExpandEnv(in, lookup)
		if err != nil || got != want {
			t.Errorf("ExpandEnv(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := map[string]string{
		"${UNSET}/x":        "environment variable UNSET is unset or empty",
		"${EMPTY}/x":        "environment variable EMPTY is unset or empty",
		"${not-a-name}":     `"${not-a-name}" is not a variable reference`,
		"${COCOFLOW_MODELS": "unbalanced ${",
	}
	for in, want := range bad {
		if _, err := ExpandEnv(in, lookup); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ExpandEnv(%q): want an error containing %q, got %v", in, want, err)
		}
	}
}

func TestConfigExpandsEnvWithPosition(t *testing.T) {
	t.Setenv("PIPELINE_TEST_TAG", "b")
	t.Setenv("PIPELINE_TEST_DIR", "/tmp/x")
	cfg := mustParse(t, "name: t\nworkdir: ${PIPELINE_TEST_DIR}/runs\nstages:\n  - id: a\n    uses: test-numbers\n    with: {tag: \"${PIPELINE_TEST_TAG}\"}\n")
	if cfg.Workdir != "/tmp/x/runs" {
		t.Errorf("workdir = %q, want /tmp/x/runs", cfg.Workdir)
	}
	if got := cfg.Stages[0].Params.(*numbersParams).Tag; got != "b" {
		t.Errorf("tag = %q, want b (from the environment)", got)
	}
	// An unset variable is an error at the value's line and column; an expanded value is
	// validated like a written one.
	_, err := ParseConfig("test.yaml", []byte("name: t\nstages:\n  - id: a\n    uses: test-numbers\n    with:\n      tag: ${PIPELINE_TEST_UNSET}\n"))
	if err == nil || !strings.Contains(err.Error(), "test.yaml:6:12: environment variable PIPELINE_TEST_UNSET is unset or empty") {
		t.Fatalf("unset variable: got %v", err)
	}
	t.Setenv("PIPELINE_TEST_TAG", "z")
	_, err = ParseConfig("test.yaml", []byte("name: t\nstages:\n  - id: a\n    uses: test-numbers\n    with: {tag: \"${PIPELINE_TEST_TAG}\"}\n"))
	if err == nil || !strings.Contains(err.Error(), `test.yaml:5:17: stage "a": parameter "tag": want one of a, b, c, got "z"`) {
		t.Fatalf("bad expanded value: got %v", err)
	}
}

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
