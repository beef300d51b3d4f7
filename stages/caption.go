package stages

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/sourcegraph/conc/pool"

	"github.com/cocoflow/cocoflow/datasets/captioner"
	"github.com/cocoflow/cocoflow/pipeline"
)

type captionParams struct {
	Backend      string        `param:"backend" default:"template" enum:"template,openai" doc:"template (from attributes) or openai (a vision-language model behind an OpenAI-compatible server)"`
	PerImage     int           `param:"per_image" default:"2" min:"2" max:"16" doc:"captions per image (CoCoIns pairs two different captions of one image)"`
	Attributes   int           `param:"attributes" default:"2" min:"1" max:"8" doc:"template: most attribute keys one caption names (an identity has more)"`
	BaseURL      string        `param:"base_url" default:"http://localhost:8000/v1" doc:"openai: server base URL (vLLM, llama.cpp server, Ollama /v1)"`
	Model        string        `param:"model" default:"llava-hf/llava-v1.6-mistral-7b-hf" doc:"openai: model name as the server knows it"`
	Prompts      []string      `param:"prompts" doc:"openai: one instruction per caption, {concept} standing for the image's concept word (default: captioner.DefaultPrompts, the two LLaVA-NeXT instructions of the paper prep)"`
	APIKeyEnv    string        `param:"api_key_env" default:"" fingerprint:"-" doc:"openai: environment variable holding a bearer token"`
	MaxTokens    int           `param:"max_tokens" default:"77" min:"8" doc:"openai: tokens per caption"`
	Temperature  float64       `param:"temperature" default:"0.7" min:"0" max:"2" doc:"openai: sampling temperature (sampled, with a seed per request, so that two prompts and a retry give different captions)"`
	TopP         float64       `param:"top_p" default:"0.9" min:"0" max:"1" doc:"openai: nucleus sampling top_p (0: the server's default)"`
	ConceptTries int           `param:"concept_retries" default:"2" min:"0" doc:"openai: more samples of a prompt whose caption lacks the concept word or repeats another's; then the row records the failure"`
	Concepts     []string      `param:"concepts" default:"man,woman,boy,girl,person,cat,dog" doc:"concept words a caption must contain one of"`
	Concurrency  int           `param:"concurrency" default:"4" min:"1" fingerprint:"-" doc:"openai: requests in flight"`
	Timeout      time.Duration `param:"timeout" default:"60s" fingerprint:"-" doc:"openai: per request"`
	Retries      int           `param:"retries" default:"4" min:"0" fingerprint:"-" doc:"openai: retries on network errors, 429 and 5xx"`
}

func init() {
	pipeline.Register(pipeline.Spec[captionParams]{
		Name:    "caption",
		Version: "2", // 2: openai sends the image first, top_p and a seed per request, and asks again for a caption without the concept word
		Doc: "Writes per_image different captions per image, each containing the image's concept word " +
			"(recorded with its byte offset). Backends: template (attribute phrases; never all of an " +
			"identity's attributes) and openai (LLaVA-NeXT or any vision-language model behind an " +
			"OpenAI-compatible chat-completions server). A caption the server could not make becomes a " +
			"row with error set, not a failed run; a plain rerun asks again for the images whose " +
			"captions failed transiently (timeouts, 429, 5xx; their error starts with \"transient: \").",
		Inputs:  []pipeline.Port{{Name: "images", Doc: "ingest output"}},
		Outputs: []pipeline.Port{{Name: "captions", Doc: "per_image rows per image", Schema: CaptionRow{}}},
		Sharded: true,
		// The openai captioner's settings are checked at config load (a URL without a scheme,
		// an unset api_key_env), at the value's line; the server is not contacted.
		Check: func(p *captionParams) error {
			if p.Backend != "openai" {
				return nil
			}
			_, _, err := newCaptioner(p)
			for field, param := range map[string]string{"BaseURL": "base_url", "Model": "model", "Prompts": "prompts", "APIKeyEnv": "api_key_env", "Concepts": "concepts"} {
				if err != nil && strings.Contains(err.Error(), "OpenAIConfig."+field) {
					return pipeline.ParamErr(param, err)
				}
			}
			return err
		},
		New: func(p *captionParams) (pipeline.Stage, error) {
			capt, backend, err := newCaptioner(p)
			if err != nil {
				return nil, err
			}
			return pipeline.StageFunc(func(ctx context.Context, job *pipeline.Job) error {
				return runCaption(ctx, job, p, capt, backend)
			}), nil
		},
	})
}

func newCaptioner(p *captionParams) (captioner.Captioner, string, error) {
	if p.Backend == "template" {
		return &captioner.Template{MaxAttributes: p.Attributes}, "template", nil
	}
	c, err := captioner.NewOpenAI(captioner.OpenAIConfig{
		BaseURL: p.BaseURL, Model: p.Model, Prompts: p.Prompts, APIKeyEnv: p.APIKeyEnv,
		MaxTokens: p.MaxTokens, Temperature: p.Temperature, TopP: p.TopP, ConceptRetries: conceptRetries(p.ConceptTries), Concurrency: p.Concurrency,
		Timeout: p.Timeout, Retries: p.Retries, Concepts: p.Concepts,
	})
	if err != nil {
		return nil, "", err
	}
	return c, "openai:" + p.Model, nil
}

// conceptRetries maps the stage's count (0: none) to OpenAIConfig's (0: its default, < 0: none).
func conceptRetries(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

func runCaption(ctx context.Context, job *pipeline.Job, p *captionParams, capt captioner.Captioner, backend string) error {
	in := job.Input("images")
	// Rows of a shard are captioned concurrently (a server is slow per request, fast in
	// aggregate); the captioner bounds the requests in flight.
	inner := p.Concurrency
	if p.Backend == "template" {
		inner = 1
	}
	out := job.Output("captions")
	return pipeline.MapShards(ctx, job, out, in.NumShards(), func(ctx context.Context, shard int) ([]CaptionRow, error) {
		images, err := pipeline.ReadShard[ImageRow](in, shard)
		if err != nil {
			return nil, err
		}
		// A shard made again to retry failed captions keeps the images whose captions are fine.
		kept := map[string][]CaptionRow{}
		for _, r := range pipeline.PreviousRows[CaptionRow](job, out, shard) {
			kept[r.ID] = append(kept[r.ID], r)
		}
		for id, rows := range kept {
			if len(rows) != p.PerImage || slices.ContainsFunc(rows, func(r CaptionRow) bool { return job.Retry(r) }) {
				delete(kept, id)
			}
		}
		perImage := make([][]CaptionRow, len(images))
		pl := pool.New().WithContext(ctx).WithCancelOnError().WithFirstError().WithMaxGoroutines(inner)
		for i, im := range images {
			if rows, ok := kept[im.ID]; ok {
				perImage[i] = rows
				continue
			}
			pl.Go(func(ctx context.Context) error {
				rows, err := captionImage(ctx, capt, backend, p.PerImage, job.Seed, im)
				perImage[i] = rows
				return err
			})
		}
		if err := pl.Wait(); err != nil {
			return nil, err
		}
		var rows []CaptionRow
		for _, r := range perImage {
			rows = append(rows, r...)
		}
		return rows, nil
	})
}

// transientMark starts the error of a caption row that failed for a reason a later run may
// not meet (captioner.Transient: a timeout, 429, 5xx, a lost connection): a plain rerun makes
// that image's captions again. Other failures (no concept word in the answer) are kept unless
// the run retries every failure (--retry-failed).
const transientMark = "transient: "

// RowFailure makes CaptionRow a pipeline.FailedRow.
func (r CaptionRow) RowFailure() (reason string, transient bool) {
	return r.Error, strings.HasPrefix(r.Error, transientMark)
}

// captionImage returns exactly n rows for one image; captions that failed carry their error.
func captionImage(ctx context.Context, capt captioner.Captioner, backend string, n int, seed uint64, im ImageRow) ([]CaptionRow, error) {
	h := fnv.New64a()
	fmt.Fprintf(h, "caption/%d/%s", seed, im.ID)
	caps, err := capt.Caption(ctx, captioner.Request{
		ID: im.ID, Image: im.Image, Class: im.Class, Scene: im.Scene, Attributes: im.Attributes,
		Seed: h.Sum64(), N: n,
	})
	var ce *captioner.CaptionError
	if err != nil && !errors.As(err, &ce) {
		return nil, fmt.Errorf("image %s: %w", im.ID, err)
	}
	rows := make([]CaptionRow, n)
	for k := range rows {
		rows[k] = CaptionRow{ID: im.ID, K: int32(k), Backend: backend, ConceptStart: -1}
		if k < len(caps) && caps[k].Text != "" {
			rows[k].Text, rows[k].Concept, rows[k].ConceptStart = caps[k].Text, caps[k].Concept, int32(caps[k].ConceptStart)
			continue
		}
		rows[k].Error = "no caption"
		if ce != nil {
			rows[k].Error = ce.Error()
			if captioner.Transient(ce) {
				rows[k].Error = transientMark + rows[k].Error
			}
		}
	}
	return rows, nil
}
