package main

import (
	"bytes"
	"context"
	"image/jpeg"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cocoflow/cocoflow/datasets/captioner"
	"github.com/cocoflow/cocoflow/datasets/celeba"
)

// The written layout is what datasets/celeba reads as CelebA: every file, the identities, Male
// from the class, 178x218 JPEGs.
func TestCelebALayoutReadsBack(t *testing.T) {
	root := filepath.Join(t.TempDir(), "celeba")
	if err := celebaCmd([]string{"-out", root, "-identities", "4", "-images", "3"}); err != nil {
		t.Fatal(err)
	}
	ds, err := celeba.Open(root, celeba.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != 12 || len(ds.Groups()) != 4 {
		t.Fatalf("%d images of %d identities, want 12 of 4", ds.Len(), len(ds.Groups()))
	}
	males := 0
	for _, r := range ds.Records() {
		if r.Attributes.Has("Male") {
			males++
		}
		data, _, err := ds.ImageBytes(r)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(data))
		if err != nil || cfg.Width != celebaW || cfg.Height != celebaH {
			t.Fatalf("%s: %dx%d (%v), want 178x218 JPEG", r.File, cfg.Width, cfg.Height, err)
		}
	}
	if males != 6 { // synthfaces assigns man, woman round-robin to the 4 identities
		t.Fatalf("%d images marked Male, want 6", males)
	}
	if err := celebaCmd(nil); err == nil || !strings.Contains(err.Error(), "-out is required") {
		t.Fatalf("no -out: %v", err)
	}
}

// The fake server answers the captioner's paper defaults with captions naming the concept,
// deterministically, and the captioner's retry turns its concept-less samples into captions.
func TestFakeLLaVAWithTheCaptioner(t *testing.T) {
	mux := http.NewServeMux()
	var calls atomic.Int32
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		fakeCompletion(w, r)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c, err := captioner.NewOpenAI(captioner.OpenAIConfig{BaseURL: srv.URL + "/v1", Model: "llava-hf/llava-v1.6-mistral-7b-hf", Temperature: 0.7, ConceptRetries: 4})
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "celeba")
	if err := celebaCmd([]string{"-out", root, "-identities", "2", "-images", "4"}); err != nil {
		t.Fatal(err)
	}
	ds, err := celeba.Open(root, celeba.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range ds.Records() {
		img, _, err := ds.ImageBytes(r)
		if err != nil {
			t.Fatal(err)
		}
		class := "woman"
		if r.Attributes.Has("Male") {
			class = "man"
		}
		req := captioner.Request{ID: r.File, Image: img, Class: class, Seed: uint64(i)}
		caps, err := c.Caption(context.Background(), req)
		if err != nil || len(caps) != 2 {
			t.Fatalf("%s: %v, %v", r.File, caps, err)
		}
		again, _ := c.Caption(context.Background(), req)
		for k, cp := range caps {
			if cp.Concept != class || !strings.HasPrefix(cp.Text, "A "+class+" ") || again[k].Text != cp.Text {
				t.Fatalf("%s caption %d: %+v (again %q), want %q first and the same twice", r.File, k, cp, again[k].Text, class)
			}
		}
	}
	// 8 images x 2 prompts, asked twice: more requests than 32 means concept-less samples were
	// asked again.
	if n := calls.Load(); n <= 32 {
		t.Fatalf("%d requests: the fake never left out the concept word, so the retry was not exercised", n)
	}
}
