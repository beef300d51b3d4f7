package captioner

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

var (
	// DefaultPrompts are the instructions OpenAI sends when OpenAIConfig.Prompts is nil: the
	// captioning instructions of the paper-scale prep (experiments/paper/prep.yaml), written for
	// LLaVA-NeXT (llava-hf/llava-v1.6-mistral-7b-hf). CoCoIns trains on two different captions
	// of one image, each naming the subject's concept word, that describe the scene and not
	// who the person is (the code, not the caption, is to carry the identity). The two
	// instructions ask for different things (action and setting; look and expression) so that
	// the captions differ even when the model would repeat itself, and {concept} is replaced by
	// the image's concept word (Request.Class, "person" without one) so that the word the
	// pseudo-word is inserted before is in the caption. The paper does not publish its
	// instruction; these are cocoflow's.
	DefaultPrompts = []string{
		"Write one sentence of at most 25 words that describes this photo for a text-to-image model. " +
			"Refer to the subject as \"a {concept}\" and say what the {concept} is doing and where. " +
			"Do not name the person. Answer with the sentence only.",
		"Describe the {concept} in this photo in one short sentence that contains the word \"{concept}\": " +
			"their expression, hair or clothing, and the background. Do not name the person. " +
			"Answer with the sentence only.",
	}
	// DefaultConcepts are the concept words OpenAI looks for when OpenAIConfig.Concepts is nil.
	DefaultConcepts = []string{"man", "woman", "boy", "girl", "person", "cat", "dog"}
)

// ConceptPlaceholder in a prompt is replaced by the image's concept word (Request.Class, or
// "person" when the request has none).
const ConceptPlaceholder = "{concept}"

const (
	defaultMaxTokens    = 96
	defaultConcurrency  = 4
	defaultTimeout      = 60 * time.Second
	defaultRetries      = 3
	defaultConceptTries = 2
	defaultBackoff      = 500 * time.Millisecond
	defaultMaxBackoff   = 60 * time.Second
	// maxBody bounds how much of a response is read.
	maxBody = 4 << 20
	// excerptLen bounds the body excerpt quoted in errors.
	excerptLen = 200
)

// OpenAIConfig configures a captioner that asks a vision-language model behind an
// OpenAI-compatible chat completions API (vLLM, llama.cpp server, Ollama). Zero fields take the
// defaults named in their comments.
type OpenAIConfig struct {
	BaseURL     string   // API root, e.g. http://localhost:8000/v1; requests go to BaseURL/chat/completions
	Model       string   // model name the server knows, e.g. llava-hf/llava-v1.6-mistral-7b-hf; required
	Prompts     []string // one request per caption; nil: DefaultPrompts
	APIKeyEnv   string   // environment variable holding a bearer token; "" sends no Authorization header
	MaxTokens   int      // max_tokens of each request; 0: 96
	Temperature float64  // sampling temperature, sent as is (0 is greedy decoding)
	TopP        float64  // nucleus sampling top_p; 0 sends none (the server's default, 1)
	// ConceptRetries is how many more times a prompt is asked, with another sampling seed,
	// when its caption lacks a concept word or repeats another prompt's caption; 0: 2, < 0:
	// none. A prompt still failing then is a PromptError, never a caption without the word.
	ConceptRetries int
	Concurrency    int           // requests in flight at once, shared by all Caption calls of one OpenAI; 0: 4
	Timeout        time.Duration // limit of one HTTP attempt, reading the body included; 0: 60s
	Retries        int           // retries after a failed attempt (network error, timeout, 429, 5xx); 0: 3, < 0: none
	Backoff        time.Duration // wait before the first retry, doubled each retry, with jitter; 0: 500ms
	MaxBackoff     time.Duration // longest wait between attempts, a Retry-After included; 0: 60s
	Seed           uint64        // seed of the backoff jitter (each request's sampling seed comes from Request.Seed)
	Concepts       []string      // candidate concept words; nil: DefaultConcepts
	Client         *http.Client  // HTTP client; nil: a client without its own timeout (Timeout applies)
}

// OpenAI is a Captioner that asks an OpenAI-compatible vision-language model for one caption
// per prompt. It is safe for concurrent use; all its Caption calls share one limit on requests
// in flight.
type OpenAI struct {
	cfg      OpenAIConfig
	endpoint string
	token    string
	sem      chan struct{}

	mu  sync.Mutex // guards rng
	rng *rand.Rand
}

var _ Captioner = (*OpenAI)(nil)

// NewOpenAI checks cfg, fills its defaults and returns the captioner. It returns an error naming
// the field when BaseURL is not an http(s) URL, Model is empty, a prompt or concept is empty,
// a number is negative, or APIKeyEnv names an unset or empty environment variable.
func NewOpenAI(cfg OpenAIConfig) (*OpenAI, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("captioner: OpenAIConfig.BaseURL: want an http(s) URL such as http://localhost:8000/v1, got %q", cfg.BaseURL)
	}
	if strings.TrimSpace(cfg.Model) == "" {
		return nil, errors.New("captioner: OpenAIConfig.Model: want the model name the server serves, got \"\"")
	}
	switch {
	case cfg.MaxTokens < 0:
		return nil, fmt.Errorf("captioner: OpenAIConfig.MaxTokens: want >= 0, got %d", cfg.MaxTokens)
	case cfg.Concurrency < 0:
		return nil, fmt.Errorf("captioner: OpenAIConfig.Concurrency: want >= 0, got %d", cfg.Concurrency)
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("captioner: OpenAIConfig.Timeout: want >= 0, got %v", cfg.Timeout)
	case cfg.Backoff < 0:
		return nil, fmt.Errorf("captioner: OpenAIConfig.Backoff: want >= 0, got %v", cfg.Backoff)
	case cfg.MaxBackoff < 0:
		return nil, fmt.Errorf("captioner: OpenAIConfig.MaxBackoff: want >= 0, got %v", cfg.MaxBackoff)
	case cfg.TopP < 0 || cfg.TopP > 1:
		return nil, fmt.Errorf("captioner: OpenAIConfig.TopP: want 0 (server default) or a share up to 1, got %g", cfg.TopP)
	}
	if cfg.Prompts == nil {
		cfg.Prompts = DefaultPrompts
	}
	cfg.Prompts = append([]string(nil), cfg.Prompts...)
	if len(cfg.Prompts) == 0 {
		return nil, errors.New("captioner: OpenAIConfig.Prompts: want at least one prompt, got none")
	}
	for i, p := range cfg.Prompts {
		if strings.TrimSpace(p) == "" {
			return nil, fmt.Errorf("captioner: OpenAIConfig.Prompts[%d]: want an instruction, got %q", i, p)
		}
	}
	if cfg.Concepts == nil {
		cfg.Concepts = DefaultConcepts
	}
	cfg.Concepts = append([]string(nil), cfg.Concepts...)
	for i, c := range cfg.Concepts {
		if strings.TrimSpace(c) == "" {
			return nil, fmt.Errorf("captioner: OpenAIConfig.Concepts[%d]: want a word, got %q", i, c)
		}
	}
	o := &OpenAI{endpoint: strings.TrimRight(cfg.BaseURL, "/") + "/chat/completions"}
	if cfg.APIKeyEnv != "" {
		o.token = os.Getenv(cfg.APIKeyEnv)
		if o.token == "" {
			return nil, fmt.Errorf("captioner: OpenAIConfig.APIKeyEnv: environment variable %s is unset or empty", cfg.APIKeyEnv)
		}
	}
	if cfg.MaxTokens == 0 {
		cfg.MaxTokens = defaultMaxTokens
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = defaultConcurrency
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultTimeout
	}
	switch {
	case cfg.Retries == 0:
		cfg.Retries = defaultRetries
	case cfg.Retries < 0:
		cfg.Retries = 0
	}
	switch {
	case cfg.ConceptRetries == 0:
		cfg.ConceptRetries = defaultConceptTries
	case cfg.ConceptRetries < 0:
		cfg.ConceptRetries = 0
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = defaultBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = defaultMaxBackoff
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	o.cfg = cfg
	o.sem = make(chan struct{}, cfg.Concurrency)
	o.rng = rand.New(rand.NewPCG(cfg.Seed, 0x6261636b6f6666)) // "backoff"
	return o, nil
}

// PromptError is the failure of the caption asked for by one prompt.
type PromptError struct {
	Index  int    // index of the prompt in OpenAIConfig.Prompts
	Prompt string // the prompt
	Err    error  // why it failed
}

// Error returns the prompt index and the reason.
func (e *PromptError) Error() string { return fmt.Sprintf("prompt %d: %v", e.Index, e.Err) }

// Unwrap returns the reason.
func (e *PromptError) Unwrap() error { return e.Err }

// CaptionError lists the prompts of one image that gave no caption. Caption returns it with
// the captions of the other prompts, so that a stage can record the failure for the row and go
// on; errors.Is(err, context.Canceled) tells a stopped run from a bad row.
type CaptionError struct {
	ID       string        // image id
	Prompts  int           // prompts asked
	Failures []PromptError // the failed prompts, in prompt order
}

// Error names the image and every failed prompt with its reason.
func (e *CaptionError) Error() string {
	parts := make([]string, len(e.Failures))
	for i := range e.Failures {
		parts[i] = e.Failures[i].Error()
	}
	return fmt.Sprintf("captioner: image %s: %d of %d captions failed: %s", e.ID, len(e.Failures), e.Prompts, strings.Join(parts, "; "))
}

// Unwrap returns the failures' reasons.
func (e *CaptionError) Unwrap() []error {
	errs := make([]error, len(e.Failures))
	for i := range e.Failures {
		errs[i] = &e.Failures[i]
	}
	return errs
}

// Caption asks the model once per prompt, concurrently within the shared limit, and returns the
// captions it got in prompt order: the first r.N prompts (all of them when r.N is 0), with
// {concept} replaced by r.Class. Each caption is cleaned (trimmed, whitespace collapsed,
// enclosing quotes stripped) and must name a concept: r.Class when it occurs, else the first of
// OpenAIConfig.Concepts to occur; a caption naming none, or repeating an earlier prompt's, is
// asked for again with another sampling seed (OpenAIConfig.ConceptRetries times). When some
// prompts fail (HTTP errors after retries, a body that is not a chat completion, empty
// content, no concept, a caption equal to an earlier one, a done context) it returns the other
// captions and a *CaptionError. Requests it can not send at all (no image, an image neither
// PNG nor JPEG, N out of range) return nil and an error naming r.ID.
func (o *OpenAI) Caption(ctx context.Context, r Request) ([]Caption, error) {
	mime, err := imageMIME(r.Image)
	if err != nil {
		return nil, fmt.Errorf("captioner: image %s: %w", r.ID, err)
	}
	n := r.N
	if n == 0 {
		n = len(o.cfg.Prompts)
	}
	if n < 0 || n > len(o.cfg.Prompts) {
		return nil, fmt.Errorf("captioner: image %s: N: want 0..%d captions (one per configured prompt), got %d", r.ID, len(o.cfg.Prompts), r.N)
	}
	dataURI := "data:" + mime + ";base64," + base64.StdEncoding.EncodeToString(r.Image)

	class := strings.TrimSpace(r.Class)
	word := strings.ToLower(class)
	if word == "" {
		word = "person"
	}
	prompts := make([]string, n)
	for i := range prompts {
		prompts[i] = strings.ReplaceAll(o.cfg.Prompts[i], ConceptPlaceholder, word)
	}
	// Each prompt's attempt a samples with seed hash(Request.Seed, i, a): a rerun asks the
	// server the same questions, and a retry after a caption without the concept word asks
	// for another sample rather than the same one.
	seed := func(i, a int) uint64 {
		h := fnv.New64a()
		fmt.Fprintf(h, "%d/%d/%d", r.Seed, i, a)
		return h.Sum64() >> 1 // vLLM reads the seed as a signed 64-bit integer
	}

	type result struct {
		c       Caption
		err     error
		attempt int
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := 0; ; a++ {
				c, err := o.ask(ctx, class, prompts[i], dataURI, seed(i, a))
				results[i] = result{c, err, a}
				if !errors.Is(err, errNoConcept) || a >= o.cfg.ConceptRetries {
					return
				}
			}
		}()
	}
	wg.Wait()

	var caps []Caption
	cerr := &CaptionError{ID: r.ID, Prompts: n}
	first := map[string]int{} // lower-cased caption -> prompt index
	for i := range results {
		res := &results[i]
		// A caption equal to an earlier prompt's is asked again with later seeds.
		for res.err == nil && res.attempt < o.cfg.ConceptRetries {
			if _, dup := first[strings.ToLower(res.c.Text)]; !dup {
				break
			}
			res.attempt++
			res.c, res.err = o.ask(ctx, class, prompts[i], dataURI, seed(i, res.attempt))
		}
		err := res.err
		if err == nil {
			key := strings.ToLower(res.c.Text)
			if j, dup := first[key]; dup {
				err = fmt.Errorf("caption %q repeats the caption of prompt %d", res.c.Text, j)
			} else {
				first[key] = i
			}
		}
		if err != nil {
			if res.attempt > 0 {
				err = fmt.Errorf("%w (after %d samples)", err, res.attempt+1)
			}
			cerr.Failures = append(cerr.Failures, PromptError{Index: i, Prompt: prompts[i], Err: err})
			continue
		}
		caps = append(caps, res.c)
	}
	if len(cerr.Failures) > 0 {
		return caps, cerr
	}
	return caps, nil
}

// errNoConcept marks a caption that names no concept word: the prompt is asked again.
var errNoConcept = errors.New("no concept word")

// transientError marks a failure that a later attempt may not repeat.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// Transient reports whether err (a *CaptionError, or one prompt's failure) holds a failure that
// a later run may not meet again: a timeout, a connection error, HTTP 429 or 5xx, once the
// retries OpenAIConfig allows are spent. A caption without a concept word, a body that is not
// a chat completion or another HTTP status is permanent; so is a cancelled context.
func Transient(err error) bool {
	var t *transientError
	return errors.As(err, &t)
}

// imageMIME returns the media type of PNG or JPEG bytes.
func imageMIME(b []byte) (string, error) {
	switch {
	case len(b) == 0:
		return "", errors.New("image: want PNG or JPEG bytes, got none")
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return "image/png", nil
	case bytes.HasPrefix(b, []byte("\xff\xd8\xff")):
		return "image/jpeg", nil
	}
	return "", fmt.Errorf("image: want PNG or JPEG bytes, got %d bytes of %s", len(b), http.DetectContentType(b))
}

// chatRequest is the body of POST /chat/completions.
type chatRequest struct {
	Model       string        `json:"model"`
	Messages    []chatMessage `json:"messages"`
	MaxTokens   int           `json:"max_tokens"`
	Temperature float64       `json:"temperature"`
	TopP        float64       `json:"top_p,omitempty"`
	Seed        uint64        `json:"seed"`
}

type chatMessage struct {
	Role    string        `json:"role"`
	Content []contentPart `json:"content"`
}

type contentPart struct {
	Type     string    `json:"type"`
	Text     string    `json:"text,omitempty"`
	ImageURL *imageURL `json:"image_url,omitempty"`
}

type imageURL struct {
	URL string `json:"url"`
}

// chatResponse is the part of a chat completion the captioner reads.
type chatResponse struct {
	Choices []struct {
		Message struct {
			Content json.RawMessage `json:"content"`
		} `json:"message"`
	} `json:"choices"`
}

// ask gets one caption for prompt, retrying what can be retried.
func (o *OpenAI) ask(ctx context.Context, class, prompt, dataURI string, seed uint64) (Caption, error) {
	body, err := json.Marshal(chatRequest{
		Model: o.cfg.Model,
		// The image before the instruction: LLaVA's own prompt order ("<image>\n..."), and
		// the image's tokens are then a prefix the prompts of one image share, which a
		// server's prefix cache (vLLM's) computes once.
		Messages: []chatMessage{{Role: "user", Content: []contentPart{
			{Type: "image_url", ImageURL: &imageURL{URL: dataURI}},
			{Type: "text", Text: prompt},
		}}},
		MaxTokens:   o.cfg.MaxTokens,
		Temperature: o.cfg.Temperature,
		TopP:        o.cfg.TopP,
		Seed:        seed,
	})
	if err != nil {
		return Caption{}, fmt.Errorf("encode request: %w", err)
	}
	for attempt := 0; ; attempt++ {
		content, retryAfter, retry, err := o.post(ctx, body)
		if err == nil {
			return o.finish(class, content)
		}
		if !retry || attempt >= o.cfg.Retries {
			if attempt > 0 {
				err = fmt.Errorf("after %d attempts: %w", attempt+1, err)
			}
			if retry {
				err = &transientError{err}
			}
			return Caption{}, err
		}
		t := time.NewTimer(o.wait(attempt, retryAfter))
		select {
		case <-ctx.Done():
			t.Stop()
			return Caption{}, fmt.Errorf("waiting to retry (%v): %w", err, ctx.Err())
		case <-t.C:
		}
	}
}

// wait returns how long to wait before retry attempt+1: Backoff·2^attempt with equal jitter
// (half fixed, half random), at least retryAfter, at most MaxBackoff.
func (o *OpenAI) wait(attempt int, retryAfter time.Duration) time.Duration {
	d := o.cfg.Backoff
	for range attempt {
		if d >= o.cfg.MaxBackoff {
			break
		}
		d *= 2
	}
	d = min(d, o.cfg.MaxBackoff)
	o.mu.Lock()
	d = d/2 + time.Duration(o.rng.Int64N(int64(d/2)+1))
	o.mu.Unlock()
	return min(max(d, retryAfter), o.cfg.MaxBackoff)
}

// post sends one attempt within the shared concurrency limit and returns the message content,
// or an error with the server's Retry-After and whether the attempt may be retried.
func (o *OpenAI) post(ctx context.Context, body []byte) (content string, retryAfter time.Duration, retry bool, err error) {
	select {
	case o.sem <- struct{}{}:
	case <-ctx.Done():
		return "", 0, false, fmt.Errorf("waiting for a free request slot: %w", ctx.Err())
	}
	defer func() { <-o.sem }()

	actx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, o.endpoint, bytes.NewReader(body))
	if err != nil {
		return "", 0, false, fmt.Errorf("POST %s: %w", o.endpoint, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if o.token != "" {
		req.Header.Set("Authorization", "Bearer "+o.token)
	}
	resp, err := o.cfg.Client.Do(req)
	if err != nil {
		return "", 0, ctx.Err() == nil, o.transportError(ctx, actx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return "", 0, ctx.Err() == nil, fmt.Errorf("HTTP %s: reading body: %w", resp.Status, o.transportError(ctx, actx, err))
	}
	if len(data) > maxBody {
		return "", 0, false, fmt.Errorf("HTTP %s: body longer than %d bytes (body: %s)", resp.Status, maxBody, excerpt(data))
	}
	switch code := resp.StatusCode; {
	case code == http.StatusTooManyRequests || code >= 500:
		return "", parseRetryAfter(resp.Header.Get("Retry-After")), true,
			fmt.Errorf("HTTP %s%s (body: %s)", resp.Status, serverMessage(data), excerpt(data))
	case code < 200 || code > 299:
		return "", 0, false, fmt.Errorf("HTTP %s%s (body: %s)", resp.Status, serverMessage(data), excerpt(data))
	}
	content, err = parseContent(data)
	if err != nil {
		return "", 0, false, fmt.Errorf("HTTP %s: %w (body: %s)", resp.Status, err, excerpt(data))
	}
	return content, 0, false, nil
}

// transportError words a failed round trip: the caller's context, the attempt's timeout, or
// the network error itself.
func (o *OpenAI) transportError(ctx, actx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("POST %s: %w", o.endpoint, ctx.Err())
	case errors.Is(actx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("POST %s: no response within the timeout of %v", o.endpoint, o.cfg.Timeout)
	}
	return fmt.Errorf("POST %s: %w", o.endpoint, err)
}

// parseContent returns choices[0].message.content of a chat completion, as a string or as
// text parts joined by spaces.
func parseContent(data []byte) (string, error) {
	var resp chatResponse
	if err := json.Unmarshal(data, &resp); err != nil {
		return "", fmt.Errorf("response is not a JSON chat completion: %v", err)
	}
	if len(resp.Choices) == 0 {
		return "", errors.New("response has no choices")
	}
	raw := resp.Choices[0].Message.Content
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		var parts []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}
		if err := json.Unmarshal(raw, &parts); err != nil {
			return "", errors.New("choices[0].message.content: want a string or text parts")
		}
		var texts []string
		for _, p := range parts {
			if p.Type == "text" || p.Type == "" {
				texts = append(texts, p.Text)
			}
		}
		s = strings.Join(texts, " ")
	}
	if strings.TrimSpace(s) == "" {
		return "", errors.New("choices[0].message.content is empty")
	}
	return s, nil
}

// finish cleans content and finds its concept word.
func (o *OpenAI) finish(class, content string) (Caption, error) {
	t := cleanText(content)
	if t == "" {
		return Caption{}, fmt.Errorf("caption %q is empty after cleaning", clip(content))
	}
	if c := strings.TrimSpace(class); c != "" {
		if _, start, ok := FindConcept(t, []string{c}); ok {
			return Caption{Text: t, Concept: strings.ToLower(c), ConceptStart: start}, nil
		}
	}
	word, start, ok := FindConcept(t, o.cfg.Concepts)
	if !ok {
		want := o.cfg.Concepts
		if c := strings.TrimSpace(class); c != "" && !slices.Contains(want, strings.ToLower(c)) {
			want = append([]string{c}, want...)
		}
		return Caption{}, fmt.Errorf("caption %q names none of the concepts %s: %w", t, strings.Join(want, ", "), errNoConcept)
	}
	return Caption{Text: t, Concept: strings.ToLower(word), ConceptStart: start}, nil
}

// serverMessage returns ": message" for an error body in the shapes servers use
// ({"error":{"message":...}}, {"error":"..."}, {"message":"..."}), or "".
func serverMessage(data []byte) string {
	var v struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(data, &v) != nil {
		return ""
	}
	var inner struct {
		Message string `json:"message"`
	}
	var s string
	switch {
	case json.Unmarshal(v.Error, &inner) == nil && inner.Message != "":
		s = inner.Message
	case json.Unmarshal(v.Error, &s) == nil && s != "":
	default:
		s = v.Message
	}
	if s == "" {
		return ""
	}
	return ": " + clip(s)
}

// excerpt returns the start of a body for an error message (see clip).
func excerpt(data []byte) string { return clip(string(data)) }

// clip returns s on one line for an error message: whitespace collapsed, invalid UTF-8 and
// other unprintable characters replaced by '?', at most excerptLen bytes kept ("…" marks a
// cut).
func clip(s string) string {
	s = strings.Join(strings.Fields(strings.ToValidUTF8(s, "?")), " ")
	s = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, s)
	if len(s) > excerptLen {
		cut := excerptLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date; 0 when absent or
// unreadable.
func parseRetryAfter(h string) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if secs, err := strconv.Atoi(h); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(min(secs, 1<<20)) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
