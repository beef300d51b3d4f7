package pipeline

import (
	"context"
	"strings"
	"testing"
)

type envParams struct {
	Path string            `param:"path" doc:"a folder"`
	List []string          `param:"list" doc:"folders"`
	Opts map[string]string `param:"opts" doc:"options"`
}

func init() {
	Register(Spec[envParams]{
		Name: "test-env", Version: "1", Doc: "parameters with ${VAR} references",
		Outputs: []Port{{Name: "out", Schema: numberRow{}}},
		Run:     func(ctx context.Context, job *Job, _ *envParams) error { return nil },
	})
}

// TestParamsExpandEnv: ${NAME} in a string, a list item and a mapping value is the
// environment variable; an unset one is an error naming it and the line; $NAME stays.
func TestParamsExpandEnv(t *testing.T) {
	t.Setenv("COCOFLOW_TEST_ROOT", "/models")
	cfg := mustParse(t, "name: t\nstages:\n  - id: a\n    uses: test-env\n    with:\n"+
		"      path: ${COCOFLOW_TEST_ROOT}/buffalo_l\n"+
		"      list: ['${COCOFLOW_TEST_ROOT}/a', $COCOFLOW_TEST_ROOT/b]\n"+
		"      opts: {dir: '${COCOFLOW_TEST_ROOT}${COCOFLOW_TEST_ROOT}', plain: x$}\n")
	p := cfg.Stages[0].Params.(*envParams)
	if p.Path != "/models/buffalo_l" || len(p.List) != 2 || p.List[0] != "/models/a" || p.List[1] != "$COCOFLOW_TEST_ROOT/b" ||
		p.Opts["dir"] != "/models/models" || p.Opts["plain"] != "x$" {
		t.Fatalf("params %+v", p)
	}
	for _, with := range []string{"path: ${COCOFLOW_TEST_UNSET}/x", "list: [a, '${COCOFLOW_TEST_UNSET}']", "opts: {k: '${COCOFLOW_TEST_UNSET}'}"} {
		_, err := ParseConfig("env.yaml", []byte("name: t\nstages:\n  - id: a\n    uses: test-env\n    with:\n      "+with+"\n"))
		if err == nil || !strings.Contains(err.Error(), "${COCOFLOW_TEST_UNSET}") || !strings.Contains(err.Error(), "not set") ||
			!strings.Contains(err.Error(), "env.yaml:6") {
			t.Errorf("%s: err %v", with, err)
		}
	}
}
