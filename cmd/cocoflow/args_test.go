package main

import (
	"strings"
	"testing"
)

func TestReorderArgs(t *testing.T) {
	app := newApp()
	cases := []struct{ in, want string }{
		{"run train.yaml --force", "run --force train.yaml"},
		{"run train.yaml --workers 2 --force", "run --workers 2 --force train.yaml"},
		{"run train.yaml --workers=2 --only a --only b", "run --workers=2 --only a --only b train.yaml"},
		{"run train.yaml -q --verify", "-q run --verify train.yaml"},
		{"--verbose run train.yaml --shard-index 1 --shard-count 2", "--verbose run --shard-index 1 --shard-count 2 train.yaml"},
		{"inspect runs/x -n 1", "inspect -n 1 runs/x"},
		{"run -- --odd-name.yaml --force", "run -- --odd-name.yaml --force"},
		{"run --force train.yaml", "run --force train.yaml"},
		{"nosuchcommand a --b", "nosuchcommand a --b"},
		{"--version", "--version"},
	}
	for _, c := range cases {
		got := strings.Join(reorderArgs(app, append([]string{"cocoflow"}, strings.Fields(c.in)...))[1:], " ")
		if got != c.want {
			t.Errorf("%q: reordered to %q, want %q", c.in, got, c.want)
		}
	}
}
