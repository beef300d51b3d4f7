package captioner

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testPNG and testJPEG are tiny real images.
var testPNG, testJPEG = func() ([]byte, []byte) {
	img := image.NewRGBA(image.Rect(0, 0, 4, 4))
	var p, j bytes.Buffer
	if err := png.Encode(&p, img); err != nil {
		panic(err)
	}
	if err := jpeg.Encode(&j, img, nil); err != nil {
		panic(err)
	}
	return p.Bytes(), j.Bytes()
}()

// wireRequest is the request body as the server sees it.
type wireRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string `json:"role"`
		Content []struct {
			Type     string `json:"type"`
			Text     string `json:"text"`
			ImageURL struct {
				URL string `json:"url"`
			} `json:"image_url"`
		} `json:"content"`
	} `json:"messages"`
	MaxTokens   *int     `json:"max_tokens"`
	Temperature *float64 `json:"temperature"`
}

// completion returns a chat completion body whose content is text.
func completion(text string) string {
	b, _ := json.Marshal(map[string]any{
		"id": "chatcmpl-1", "object": "chat.completion", "model": "llava",
		"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": text}}},
	})
	return string(b)
}

// promptOf decodes the request and returns its text prompt ("" when undecodable).
func promptOf(r *http.Request) (wireRequest, string) {
	var w wireRequest
	if err := json.NewDecoder(r.Body).Decode(&w); err != nil || len(w.Messages) == 0 || len(w.Messages[0].Content) < 2 {
		return w, ""
	}
	return w, w.Messages[0].Content[1].Text
}

// newServer starts a test server with handler h and returns a config pointing at it.
func newServer(t *testing.T, h http.HandlerFunc) OpenAIConfig {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return OpenAIConfig{BaseURL: srv.URL + "/v1/", Model: "llava-v1.6", Backoff: time.Millisecond, Timeout: 5 * time.Second}
}

func mustOpenAI(t *testing.T, cfg OpenAIConfig) *OpenAI {
	t.Helper()
	o, err := NewOpenAI(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestOpenAIRequestFormat(t *testing.T) {
	var mu sync.Mutex
	var got []wireRequest
	var paths, auths, ctypes []string
	cfg := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		wr, prompt := promptOf(r)
		mu.Lock()
		got = append(got, wr)
		paths = append(paths, r.Method+" "+r.URL.Path)
		auths = append(auths, r.Header.Get("Authorization"))
		ctypes = append(ctypes, r.Header.Get("Content-Type"))
		mu.Unlock()
		fmt.Fprint(w, completion("A man "+strings.ToLower(prompt[:5])+"."))
	})
	t.Setenv("TEST_VLM_KEY", "sk-secret")
	cfg.APIKeyEnv = "TEST_VLM_KEY"
	cfg.MaxTokens = 77
	cfg.Temperature = 0.25
	cfg.Prompts = []string{"First prompt here.", "Second prompt here."}
	o := mustOpenAI(t, cfg)

	for _, img := range []struct {
		name  string
		bytes []byte
		mime  string
	}{{"png", testPNG, "image/png"}, {"jpeg", testJPEG, "image/jpeg"}} {
		got, paths, auths, ctypes = nil, nil, nil, nil
		caps, err := o.Caption(context.Background(), Request{ID: "img-" + img.name, Image: img.bytes, Class: "man"})
		if err != nil {
			t.Fatalf("%s: %v", img.name, err)
		}
		if len(caps) != 2 || caps[0].Text != "A man first." || caps[1].Text != "A man secon." {
			t.Fatalf("%s: captions %q, want one per prompt in prompt order", img.name, texts(caps))
		}
		if len(got) != 2 {
			t.Fatalf("%s: server saw %d requests, want 2", img.name, len(got))
		}
		wantURI := "data:" + img.mime + ";base64," + base64.StdEncoding.EncodeToString(img.bytes)
		prompts := map[string]bool{}
		for i, wr := range got {
			if paths[i] != "POST /v1/chat/completions" {
				t.Errorf("request %d: %s, want POST /v1/chat/completions", i, paths[i])
			}
			if auths[i] != "Bearer sk-secret" || ctypes[i] != "application/json" {
				t.Errorf("request %d: Authorization %q, Content-Type %q", i, auths[i], ctypes[i])
			}
			if wr.Model != "llava-v1.6" || wr.MaxTokens == nil || *wr.MaxTokens != 77 || wr.Temperature == nil || *wr.Temperature != 0.25 {
				t.Errorf("request %d: model %q, max_tokens %v, temperature %v", i, wr.Model, wr.MaxTokens, wr.Temperature)
			}
			if len(wr.Messages) != 1 || wr.Messages[0].Role != "user" || len(wr.Messages[0].Content) != 2 {
				t.Fatalf("request %d: want one user message with a text and an image part, got %+v", i, wr.Messages)
			}
			c := wr.Messages[0].Content
			if c[0].Type != "image_url" || c[1].Type != "text" || c[0].ImageURL.URL != wantURI {
				t.Errorf("request %d: parts %q/%q, image url %.40q…, want image_url %.40q… then text", i, c[0].Type, c[1].Type, c[0].ImageURL.URL, wantURI)
			}
			prompts[c[1].Text] = true
		}
		if !prompts["First prompt here."] || !prompts["Second prompt here."] {
			t.Errorf("%s: prompts sent %v, want both configured prompts", img.name, prompts)
		}
	}
}

func TestOpenAIDefaults(t *testing.T) {
	var n atomic.Int32
	var sawAuth atomic.Bool
	cfg := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		wr, prompt := promptOf(r)
		n.Add(1)
		if r.Header.Get("Authorization") != "" {
			sawAuth.Store(true)
		}
		if *wr.MaxTokens != defaultMaxTokens {
			http.Error(w, "bad max_tokens", http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, completion(`  "A woman `+fmt.Sprint(len(prompt))+`  smiling." `))
	})
	o := mustOpenAI(t, cfg)
	caps, err := o.Caption(context.Background(), Request{ID: "a", Image: testPNG, Class: "woman"})
	if err != nil {
		t.Fatal(err)
	}
	if n.Load() != int32(len(DefaultPrompts)) || len(caps) != len(DefaultPrompts) || sawAuth.Load() {
		t.Fatalf("%d requests, %d captions, auth header %v; want %d, %d, none", n.Load(), len(caps), sawAuth.Load(), len(DefaultPrompts), len(DefaultPrompts))
	}
	for _, c := range caps {
		if !strings.HasPrefix(c.Text, "A woman ") || strings.Contains(c.Text, "  ") || strings.Contains(c.Text, `"`) || c.Concept != "woman" || c.ConceptStart != 2 {
			t.Errorf("caption %+v: want cleaned text with concept woman at 2", c)
		}
	}
}

func TestOpenAIConcept(t *testing.T) {
	tests := []struct {
		name, reply, class string
		concept            string
		start              int
		wantErr            string
	}{
		{"class preferred", "A man walks his dog.", "dog", "dog", 16, ""},
		{"first concept in text", "A man walks his dog.", "", "man", 2, ""},
		{"class absent falls back", "A Girl with a kite.", "woman", "girl", 2, ""},
		{"woman is not man", "A woman reading.", "man", "woman", 2, ""},
		{"no concept", "A red car parked outside.", "man", "", 0, "names none of the concepts man, woman, boy"},
		{"empty content", "   ", "man", "", 0, "content is empty"},
		{"only quotes", `""`, "man", "", 0, "empty after cleaning"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := newServer(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, completion(tt.reply)) })
			cfg.Prompts = []string{"Describe."}
			caps, err := mustOpenAI(t, cfg).Caption(context.Background(), Request{ID: "img9", Image: testPNG, Class: tt.class})
			if tt.wantErr != "" {
				var ce *CaptionError
				if !errors.As(err, &ce) || len(caps) != 0 || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "img9") {
					t.Fatalf("captions %q, err %v; want a *CaptionError for img9 containing %q", texts(caps), err, tt.wantErr)
				}
				return
			}
			if err != nil || len(caps) != 1 || caps[0].Concept != tt.concept || caps[0].ConceptStart != tt.start {
				t.Fatalf("captions %+v, err %v; want concept %q at %d", caps, err, tt.concept, tt.start)
			}
		})
	}
}

// TestOpenAIHTTPFailures covers retried and permanent failures; every case names the image,
// the HTTP status and a body excerpt, and counts attempts.
func TestOpenAIHTTPFailures(t *testing.T) {
	tests := []struct {
		name     string
		retries  int
		replies  []func(w http.ResponseWriter) // one per attempt; the last repeats
		attempts int32
		wantErr  []string // "" entries: success
	}{
		{"503 then success", 3, []func(http.ResponseWriter){
			status(503, "overloaded"), status(503, "overloaded"), ok("A dog sitting."),
		}, 3, nil},
		{"503 exhausts retries", 2, []func(http.ResponseWriter){status(503, "<html>busy</html>")},
			3, []string{"img5", "after 3 attempts", "HTTP 503 Service Unavailable", "<html>busy</html>"}},
		{"400 with error JSON is not retried", 3, []func(http.ResponseWriter){
			status(400, `{"error":{"message":"image too large","type":"invalid_request_error"}}`)},
			1, []string{"img5", "HTTP 400 Bad Request: image too large", `"error":{"message"`}},
		{"404 with vLLM error shape", 3, []func(http.ResponseWriter){status(404, `{"object":"error","message":"The model does not exist."}`)},
			1, []string{"HTTP 404 Not Found: The model does not exist."}},
		{"non-JSON body", 3, []func(http.ResponseWriter){ok2xx("<html>proxy page</html>")},
			1, []string{"img5", "HTTP 200 OK", "not a JSON chat completion", "<html>proxy page</html>"}},
		{"empty choices", 3, []func(http.ResponseWriter){ok2xx(`{"choices":[]}`)},
			1, []string{"img5", "HTTP 200 OK", "no choices", `{"choices":[]}`}},
		{"content parts", 3, []func(http.ResponseWriter){ok2xx(`{"choices":[{"message":{"content":[{"type":"text","text":"A cat"},{"type":"text","text":"asleep."}]}}]}`)},
			1, nil},
		{"null content", 3, []func(http.ResponseWriter){ok2xx(`{"choices":[{"message":{"content":null}}]}`)},
			1, []string{"content is empty"}},
		{"number content", 3, []func(http.ResponseWriter){ok2xx(`{"choices":[{"message":{"content":42}}]}`)},
			1, []string{"want a string or text parts"}},
		{"long body is cut", 0, []func(http.ResponseWriter){status(400, strings.Repeat("x", 5000))},
			1, []string{"xxx…"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var attempts atomic.Int32
			cfg := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				i := int(attempts.Add(1)) - 1
				tt.replies[min(i, len(tt.replies)-1)](w)
			})
			cfg.Retries = tt.retries
			cfg.Prompts = []string{"Describe."}
			caps, err := mustOpenAI(t, cfg).Caption(context.Background(), Request{ID: "img5", Image: testPNG, Class: "dog"})
			if got := attempts.Load(); got != tt.attempts {
				t.Errorf("server saw %d attempts, want %d", got, tt.attempts)
			}
			if tt.wantErr == nil {
				if err != nil || len(caps) != 1 {
					t.Fatalf("captions %q, err %v; want one caption", texts(caps), err)
				}
				return
			}
			var ce *CaptionError
			if !errors.As(err, &ce) || len(ce.Failures) != 1 || ce.Failures[0].Index != 0 {
				t.Fatalf("err %v: want a *CaptionError with prompt 0 failed", err)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if len(err.Error()) > 600 {
				t.Errorf("error is %d bytes long, want a short excerpt", len(err.Error()))
			}
		})
	}
}

func status(code int, body string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.WriteHeader(code)
		fmt.Fprint(w, body)
	}
}

func ok(text string) func(http.ResponseWriter) { return ok2xx(completion(text)) }

func ok2xx(body string) func(http.ResponseWriter) { return status(200, body) }

func TestOpenAIRetryAfter(t *testing.T) {
	var attempts atomic.Int32
	var first, second atomic.Int64
	cfg := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if attempts.Add(1) == 1 {
			first.Store(time.Now().UnixNano())
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"error":{"message":"rate limited"}}`)
			return
		}
		second.Store(time.Now().UnixNano())
		fmt.Fprint(w, completion("A cat."))
	})
	cfg.Prompts = []string{"Describe."}
	caps, err := mustOpenAI(t, cfg).Caption(context.Background(), Request{ID: "x", Image: testPNG})
	if err != nil || len(caps) != 1 || caps[0].Concept != "cat" {
		t.Fatalf("captions %+v, err %v", caps, err)
	}
	if gap := time.Duration(second.Load() - first.Load()); gap < 950*time.Millisecond {
		t.Errorf("retried %v after a 429 with Retry-After: 1, want >= 1s", gap)
	}
	if got := parseRetryAfter(time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)); got < time.Second || got > 3*time.Second {
		t.Errorf("Retry-After as HTTP date 3s ahead: %v", got)
	}
	for _, h := range []string{"", "soon", "-5"} {
		if got := parseRetryAfter(h); got != 0 {
			t.Errorf("parseRetryAfter(%q) = %v, want 0", h, got)
		}
	}
}

func TestOpenAIBackoff(t *testing.T) {
	o := mustOpenAI(t, OpenAIConfig{BaseURL: "http://localhost:1/v1", Model: "m", Backoff: 100 * time.Millisecond, MaxBackoff: time.Second, Seed: 1})
	for attempt, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		want *= time.Millisecond
		if attempt >= 4 {
			want = time.Second
		}
		for range 20 {
			d := o.wait(attempt, 0)
			if d < want/2 || d > want {
				t.Fatalf("wait(%d) = %v, want in [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
	if d := o.wait(0, 700*time.Millisecond); d != 700*time.Millisecond {
		t.Errorf("wait with Retry-After 700ms = %v", d)
	}
	if d := o.wait(0, time.Hour); d != time.Second {
		t.Errorf("wait with Retry-After 1h = %v, want MaxBackoff 1s", d)
	}
	// The jitter is reproducible from the seed.
	a := mustOpenAI(t, OpenAIConfig{BaseURL: "http://x/v1", Model: "m", Seed: 3})
	b := mustOpenAI(t, OpenAIConfig{BaseURL: "http://x/v1", Model: "m", Seed: 3})
	for i := range 5 {
		if x, y := a.wait(i, 0), b.wait(i, 0); x != y {
			t.Fatalf("same seed, waits %v and %v", x, y)
		}
	}
}

func TestOpenAITimeout(t *testing.T) {
	var attempts atomic.Int32
	release := make(chan struct{})
	cfg := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		case <-time.After(10 * time.Second):
		}
	})
	defer close(release)
	cfg.Timeout = 50 * time.Millisecond
	cfg.Retries = 1
	cfg.Prompts = []string{"Describe."}
	start := time.Now()
	caps, err := mustOpenAI(t, cfg).Caption(context.Background(), Request{ID: "slow1", Image: testPNG, Class: "man"})
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %v with a 50ms timeout and one retry", el)
	}
	var ce *CaptionError
	if !errors.As(err, &ce) || len(caps) != 0 || !strings.Contains(err.Error(), "no response within the timeout of 50ms") || !strings.Contains(err.Error(), "slow1") {
		t.Fatalf("captions %q, err %v; want a timeout *CaptionError for slow1", texts(caps), err)
	}
	if n := attempts.Load(); n != 2 {
		t.Errorf("%d attempts, want 2 (a timeout is retried)", n)
	}
}

func TestOpenAIConcurrencyLimit(t *testing.T) {
	const limit = 2
	var inFlight, maxInFlight, total atomic.Int32
	cfg := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		total.Add(1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		_, prompt := promptOf(r)
		time.Sleep(15 * time.Millisecond)
		fmt.Fprint(w, completion("A person, "+prompt))
	})
	cfg.Concurrency = limit
	cfg.Prompts = []string{"one", "two", "three"}
	o := mustOpenAI(t, cfg)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			caps, err := o.Caption(context.Background(), Request{ID: fmt.Sprint("img", i), Image: testPNG, Class: "person"})
			if err == nil && len(caps) != 3 {
				err = fmt.Errorf("got %d captions, want 3", len(caps))
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if m := maxInFlight.Load(); m > limit || m < 2 {
		t.Errorf("server saw at most %d requests in flight, want exactly the limit %d", m, limit)
	}
	if total.Load() != 18 {
		t.Errorf("server saw %d requests, want 18", total.Load())
	}
}

func TestOpenAICancel(t *testing.T) {
	arrived := make(chan struct{}, 4)
	cfg := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // the server notices a closed connection only after the body
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	cfg.Timeout = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	start := time.Now()
	caps, err := mustOpenAI(t, cfg).Caption(ctx, Request{ID: "c1", Image: testPNG, Class: "man"})
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Caption returned %v after cancellation", el)
	}
	var ce *CaptionError
	if !errors.Is(err, context.Canceled) || !errors.As(err, &ce) || len(caps) != 0 {
		t.Fatalf("captions %q, err %v; want a *CaptionError wrapping context.Canceled", texts(caps), err)
	}
	// Cancellation while waiting to retry.
	cfg2 := newServer(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	cfg2.Backoff = time.Minute
	cfg2.Prompts = []string{"Describe."}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	start = time.Now()
	_, err = mustOpenAI(t, cfg2).Caption(ctx2, Request{ID: "c2", Image: testPNG, Class: "man"})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("err %v after %v; want context.DeadlineExceeded soon", err, time.Since(start))
	}
}

func TestOpenAIPartialAndDuplicates(t *testing.T) {
	cfg := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, prompt := promptOf(r)
		switch prompt {
		case "bad":
			status(400, `{"error":"nope"}`)(w)
		default:
			fmt.Fprint(w, completion("A man in a park."))
		}
	})
	cfg.Prompts = []string{"good", "bad", "again"}
	caps, err := mustOpenAI(t, cfg).Caption(context.Background(), Request{ID: "p1", Image: testPNG, Class: "man"})
	var ce *CaptionError
	if !errors.As(err, &ce) || len(caps) != 1 || caps[0].Text != "A man in a park." {
		t.Fatalf("captions %q, err %v; want the first caption and a *CaptionError", texts(caps), err)
	}
	if len(ce.Failures) != 2 || ce.Failures[0].Index != 1 || ce.Failures[1].Index != 2 || ce.ID != "p1" || ce.Prompts != 3 {
		t.Fatalf("failures %+v", ce)
	}
	if !strings.Contains(ce.Failures[0].Error(), "HTTP 400 Bad Request: nope") || !strings.Contains(ce.Failures[1].Error(), "repeats the caption of prompt 0") {
		t.Errorf("failures: %v", err)
	}
	if !strings.Contains(err.Error(), "image p1: 2 of 3 captions failed") {
		t.Errorf("error %q", err)
	}
}

func TestOpenAIBadRequests(t *testing.T) {
	cfg := newServer(t, func(w http.ResponseWriter, r *http.Request) { t.Error("no request expected") })
	o := mustOpenAI(t, cfg)
	tests := []struct {
		name string
		r    Request
		want string
	}{
		{"no image", Request{ID: "b1"}, "image b1: image: want PNG or JPEG bytes, got none"},
		{"gif", Request{ID: "b2", Image: []byte("GIF89a......")}, "image/gif"},
		{"N too large", Request{ID: "b3", Image: testPNG, N: 3}, "N: want 0..2"},
		{"N negative", Request{ID: "b4", Image: testPNG, N: -1}, "N: want 0..2"},
	}
	for _, tt := range tests {
		caps, err := o.Caption(context.Background(), tt.r)
		var ce *CaptionError
		if err == nil || caps != nil || errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: captions %q, err %v; want a plain error containing %q", tt.name, texts(caps), err, tt.want)
		}
	}
}

func TestNewOpenAIErrors(t *testing.T) {
	good := OpenAIConfig{BaseURL: "http://localhost:8000/v1", Model: "m"}
	tests := []struct {
		name string
		edit func(*OpenAIConfig)
		want string
	}{
		{"empty url", func(c *OpenAIConfig) { c.BaseURL = "" }, "BaseURL"},
		{"no scheme", func(c *OpenAIConfig) { c.BaseURL = "localhost:8000/v1" }, "BaseURL"},
		{"ftp", func(c *OpenAIConfig) { c.BaseURL = "ftp://host/v1" }, "BaseURL"},
		{"no model", func(c *OpenAIConfig) { c.Model = " " }, "Model"},
		{"empty prompt list", func(c *OpenAIConfig) { c.Prompts = []string{} }, "Prompts"},
		{"blank prompt", func(c *OpenAIConfig) { c.Prompts = []string{"ok", " "} }, "Prompts[1]"},
		{"blank concept", func(c *OpenAIConfig) { c.Concepts = []string{""} }, "Concepts[0]"},
		{"negative concurrency", func(c *OpenAIConfig) { c.Concurrency = -1 }, "Concurrency"},
		{"negative timeout", func(c *OpenAIConfig) { c.Timeout = -time.Second }, "Timeout"},
		{"negative max tokens", func(c *OpenAIConfig) { c.MaxTokens = -1 }, "MaxTokens"},
		{"unset key env", func(c *OpenAIConfig) { c.APIKeyEnv = "COCOFLOW_TEST_UNSET_KEY" }, "COCOFLOW_TEST_UNSET_KEY"},
	}
	for _, tt := range tests {
		cfg := good
		tt.edit(&cfg)
		if _, err := NewOpenAI(cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want one naming %s", tt.name, err, tt.want)
		}
	}
	o, err := NewOpenAI(OpenAIConfig{BaseURL: "https://vlm.example/v1/", Model: "m", Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if o.endpoint != "https://vlm.example/v1/chat/completions" || o.cfg.Retries != 0 || o.cfg.Concurrency != defaultConcurrency {
		t.Errorf("endpoint %q, retries %d, concurrency %d", o.endpoint, o.cfg.Retries, o.cfg.Concurrency)
	}
}

// Transient tells the failures a later run may not meet from those it will meet again.
func TestTransientFailures(t *testing.T) {
	cases := []struct {
		name      string
		handler   http.HandlerFunc
		timeout   time.Duration
		transient bool
	}{
		{"500", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "loading", http.StatusInternalServerError) }, 0, true},
		{"429", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "slow down", http.StatusTooManyRequests) }, 0, true},
		{"timeout", func(w http.ResponseWriter, r *http.Request) { time.Sleep(200 * time.Millisecond) }, 20 * time.Millisecond, true},
		{"connection dropped", func(w http.ResponseWriter, r *http.Request) {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		}, 0, true},
		{"400", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "bad image", http.StatusBadRequest) }, 0, false},
		{"no concept word", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, completion("A sunny day.")) }, 0, false},
		{"not a completion", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<html>proxy</html>") }, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := newServer(t, c.handler)
			cfg.Retries = 1
			if c.timeout > 0 {
				cfg.Timeout = c.timeout
			}
			_, err := mustOpenAI(t, cfg).Caption(context.Background(), Request{ID: "x", Image: testPNG, Class: "man", N: 1})
			var ce *CaptionError
			if !errors.As(err, &ce) {
				t.Fatalf("want a *CaptionError, got %v", err)
			}
			if got := Transient(err); got != c.transient {
				t.Fatalf("Transient(%v) = %v, want %v", err, got, c.transient)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cfg := newServer(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "x", http.StatusInternalServerError) })
	if _, err := mustOpenAI(t, cfg).Caption(ctx, Request{ID: "x", Image: testPNG, N: 1}); Transient(err) {
		t.Fatalf("a cancelled run is not a transient row failure: %v", err)
	}
}

// TestOpenAIPaperDefaults checks the documented paper default: the two LLaVA instructions with
// the image's concept word in place of {concept}, a sampling seed per request, and a caption
// without the concept word asked again with another seed before it becomes a PromptError.
func TestOpenAIPaperDefaults(t *testing.T) {
	type seen struct {
		prompt string
		seed   uint64
		topP   float64
	}
	var mu sync.Mutex
	var got []seen
	cfg := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Messages []struct {
				Content []struct {
					Text string `json:"text"`
				} `json:"content"`
			} `json:"messages"`
			Seed *uint64  `json:"seed"`
			TopP *float64 `json:"top_p"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Seed == nil || req.TopP == nil {
			http.Error(w, "want seed and top_p", http.StatusBadRequest)
			return
		}
		prompt := req.Messages[0].Content[1].Text
		mu.Lock()
		got = append(got, seen{prompt, *req.Seed, *req.TopP})
		tries := 0
		for _, s := range got {
			if s.prompt == prompt {
				tries++
			}
		}
		mu.Unlock()
		switch {
		case strings.Contains(prompt, "doing and where") && tries == 1:
			fmt.Fprint(w, completion("Someone stands in a garden.")) // no concept word: asked again
		case strings.Contains(prompt, "doing and where"):
			fmt.Fprint(w, completion("A woman stands in a garden."))
		default:
			fmt.Fprint(w, completion("A smiling woman with long hair in front of trees."))
		}
	})
	cfg.TopP = 0.9
	o := mustOpenAI(t, cfg)
	caps, err := o.Caption(context.Background(), Request{ID: "celeba-000001", Image: testJPEG, Class: "woman", Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if len(caps) != 2 || caps[0].Text != "A woman stands in a garden." || caps[1].Concept != "woman" {
		t.Fatalf("captions %q", texts(caps))
	}
	if len(got) != 3 {
		t.Fatalf("%d requests, want 3 (one prompt asked twice)", len(got))
	}
	seeds := map[uint64]bool{}
	for _, s := range got {
		if strings.Contains(s.prompt, ConceptPlaceholder) || !strings.Contains(s.prompt, `woman"`) || s.topP != 0.9 {
			t.Errorf("request %+v: want {concept} replaced by woman and top_p 0.9", s)
		}
		seeds[s.seed] = true
	}
	if len(seeds) != 3 {
		t.Errorf("seeds %v: want a different seed for every request", seeds)
	}
	// The same request asks with the same seeds again.
	got = nil
	if _, err := o.Caption(context.Background(), Request{ID: "celeba-000001", Image: testJPEG, Class: "woman", Seed: 7}); err != nil {
		t.Fatal(err)
	}
	for _, s := range got {
		if !seeds[s.seed] {
			t.Errorf("rerun sent seed %d, not one of the first run's", s.seed)
		}
	}

	// A model that never names the concept: ConceptRetries more samples, then a failure of
	// that prompt naming the caption; never a caption without the word.
	var n atomic.Int32
	cfg = newServer(t, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		fmt.Fprint(w, completion("A red car parked outside."))
	})
	cfg.Prompts, cfg.ConceptRetries = []string{"Describe the {concept}."}, 3
	caps, err = mustOpenAI(t, cfg).Caption(context.Background(), Request{ID: "img3", Image: testPNG, Class: "man"})
	var ce *CaptionError
	if !errors.As(err, &ce) || len(caps) != 0 || n.Load() != 4 || !strings.Contains(err.Error(), `"A red car parked outside." names none of the concepts`) || !strings.Contains(err.Error(), "after 4 samples") || Transient(err) {
		t.Fatalf("%d requests, captions %q, err %v; want 4 requests and a permanent failure", n.Load(), texts(caps), err)
	}
	// Two prompts answered alike: the second is asked again and its next answer kept.
	var m atomic.Int32
	cfg = newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if m.Add(1) <= 2 {
			fmt.Fprint(w, completion("A man at the beach."))
			return
		}
		fmt.Fprint(w, completion("A man on the sand by the sea."))
	})
	cfg.Prompts = []string{"One.", "Two."}
	caps, err = mustOpenAI(t, cfg).Caption(context.Background(), Request{ID: "img4", Image: testPNG, Class: "man"})
	if err != nil || len(caps) != 2 || caps[0].Text == caps[1].Text {
		t.Fatalf("captions %q, err %v: want two different captions", texts(caps), err)
	}
}
