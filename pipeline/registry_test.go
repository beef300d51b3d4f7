package pipeline

import (
	"context"
	"strings"
	"testing"
)

type registryParams struct {
	N int `param:"n" default:"3" doc:"a number"`
}

// TestRegisterIsTyped: a kind declared with Spec[P] gets its parameters as a *P in Check and
// Run, and a declaration with neither or both of Run and New is refused at registration.
func TestRegisterIsTyped(t *testing.T) {
	var checked, ran int
	Register(Spec[registryParams]{
		Name: "test-typed", Version: "1", Doc: "typed parameters",
		Outputs: []Port{{Name: "out", Schema: sumRow{}}},
		Check:   func(p *registryParams) error { checked = p.N; return nil },
		Run: func(ctx context.Context, job *Job, p *registryParams) error {
			ran = p.N
			return WriteRows(job, job.Output("out"), []sumRow{{Count: int64(p.N)}}, 0)
		},
	})
	cfg := mustParse(t, "name: typed\nstages:\n  - id: a\n    uses: test-typed\n    with: {n: 7}\n")
	run(t, cfg, t.TempDir(), Options{})
	if checked != 7 || ran != 7 {
		t.Fatalf("Check saw n = %d, Run saw n = %d, want 7 and 7", checked, ran)
	}
	for _, tc := range []struct {
		name string
		spec Spec[registryParams]
	}{
		{"neither", Spec[registryParams]{Name: "test-neither", Version: "1", Outputs: []Port{{Name: "out"}}}},
		{"both", Spec[registryParams]{Name: "test-both", Version: "1", Outputs: []Port{{Name: "out"}},
			Run: func(context.Context, *Job, *registryParams) error { return nil },
			New: func(*registryParams) (Stage, error) { return nil, nil }}},
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(r.(string), "exactly one of Run and New") {
					t.Errorf("%s: recovered %v, want a panic naming Run and New", tc.name, r)
				}
			}()
			Register(tc.spec)
		}()
	}
}
