package celeba

import (
	"slices"
	"strings"
	"testing"
)

func TestAttributeNames(t *testing.T) {
	if len(AttributeNames) != 40 || AttributeNames[0] != "5_o_Clock_Shadow" || AttributeNames[20] != "Male" ||
		AttributeNames[31] != "Smiling" || AttributeNames[39] != "Young" {
		t.Errorf("AttributeNames out of canonical order: %v", AttributeNames)
	}
	for i, n := range AttributeNames {
		if j, err := AttributeIndex(n); err != nil || j != i {
			t.Errorf("AttributeIndex(%q) = %d, %v; want %d", n, j, err, i)
		}
	}
	if _, err := AttributeIndex("smiling"); err == nil || !strings.Contains(err.Error(), `"smiling"`) {
		t.Errorf("AttributeIndex(smiling): got %v, want an error naming it", err)
	}
}

func TestAttributes(t *testing.T) {
	var a Attributes
	a, err := a.With("Young", true)
	if err != nil {
		t.Fatal(err)
	}
	a, _ = a.With("Eyeglasses", true)
	a, _ = a.With("5_o_Clock_Shadow", true)
	a, _ = a.With("Eyeglasses", false)
	if _, err := a.With("Glasses", true); err == nil {
		t.Error("With(Glasses): want error")
	}
	for _, tc := range []struct {
		name string
		want bool
	}{{"Young", true}, {"5_o_Clock_Shadow", true}, {"Eyeglasses", false}, {"Male", false}, {"Nope", false}} {
		if got := a.Has(tc.name); got != tc.want {
			t.Errorf("Has(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := a.Names(); !slices.Equal(got, []string{"5_o_Clock_Shadow", "Young"}) {
		t.Errorf("Names = %v", got)
	}
	m := a.Map()
	if len(m) != 40 || !m["Young"] || m["Male"] {
		t.Errorf("Map = %v", m)
	}
	if a.Get(-1) || a.Get(40) || !a.Get(0) {
		t.Error("Get out of range must be false, Get(0) true")
	}
}
