package sdxl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cocoflow/cocoflow/models/diffusion"
	"github.com/cocoflow/cocoflow/models/runtime/onnxgraph"
)

// The folder optimum-cli export onnx writes for an SDXL pipeline.
const (
	ModelIndexFile = "model_index.json"
	ModelFile      = "model.onnx"      // each component's graph
	ModelDataFile  = "model.onnx_data" // its weights, when they pass protobuf's 2 GB
	ConfigFile     = "config.json"     // each component's diffusers or transformers config

	dirUNet         = "unet"
	dirTextEncoder  = "text_encoder"
	dirTextEncoder2 = "text_encoder_2"
	dirVAEEncoder   = "vae_encoder"
	dirVAEDecoder   = "vae_decoder"
	dirTokenizer    = "tokenizer"
	dirTokenizer2   = "tokenizer_2"
	dirScheduler    = "scheduler"
	schedulerFile   = "scheduler_config.json"
)

// exportHint is how to make the folder, for error messages.
const exportHint = "want the folder `optimum-cli export onnx --model stabilityai/stable-diffusion-xl-base-1.0 DIR` writes"

// modelIndex is what cocoflow reads of model_index.json.
type modelIndex struct {
	Class      string `json:"_class_name"`
	ForceZeros *bool  `json:"force_zeros_for_empty_prompt"`
}

// unetConfig is what cocoflow reads of unet/config.json (diffusers UNet2DConditionModel).
type unetConfig struct {
	SampleSize        int     `json:"sample_size"`
	InChannels        int     `json:"in_channels"`
	AdditionEmbedType *string `json:"addition_embed_type"`
	RequiresAesthetic bool    `json:"requires_aesthetics_score"`
}

// clipConfig is what cocoflow reads of text_encoder*/config.json (transformers CLIPTextConfig).
type clipConfig struct {
	HiddenSize    int `json:"hidden_size"`
	Layers        int `json:"num_hidden_layers"`
	MaxPositions  int `json:"max_position_embeddings"`
	ProjectionDim int `json:"projection_dim"`
}

// vaeConfig is what cocoflow reads of vae_encoder/config.json and vae_decoder/config.json
// (diffusers AutoencoderKL).
type vaeConfig struct {
	ScalingFactor  *float64 `json:"scaling_factor"`
	ShiftFactor    *float64 `json:"shift_factor"`
	BlockOut       []int    `json:"block_out_channels"`
	LatentChannels int      `json:"latent_channels"`
	SampleSize     int      `json:"sample_size"`
}

// schedulerConfig is what cocoflow reads of scheduler/scheduler_config.json.
type schedulerConfig struct {
	Class          string  `json:"_class_name"`
	TrainSteps     int     `json:"num_train_timesteps"`
	BetaStart      float64 `json:"beta_start"`
	BetaEnd        float64 `json:"beta_end"`
	BetaSchedule   string  `json:"beta_schedule"`
	TrainedBetas   []any   `json:"trained_betas"`
	Prediction     string  `json:"prediction_type"`
	StepsOffset    *int    `json:"steps_offset"`
	Spacing        *string `json:"timestep_spacing"`
	RescaleBetasZS bool    `json:"rescale_betas_zero_snr"`
}

// layout is a checked model folder: its configs and what follows from them.
type layout struct {
	root      string
	index     modelIndex
	unet      unetConfig
	text      [2]clipConfig
	vae       vaeConfig
	sched     schedulerConfig
	factor    int    // VAE down-sampling factor, 2^(blocks-1)
	schedule  string // diffusion schedule kind
	predicts  string // "epsilon" or "v"
	imageSize int
}

// path returns the path of name inside the component folder dir.
func (l *layout) path(dir, name string) string { return filepath.Join(l.root, dir, name) }

// readLayout checks the model folder and reads its configs. Errors name the file or folder
// and what was expected.
func readLayout(root string) (*layout, error) {
	if root == "" {
		return nil, fmt.Errorf("sdxl: model_dir is empty: the sdxl family has no built-in weights; %s", exportHint)
	}
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("sdxl: model folder: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("sdxl: model folder %s is a file; %s", root, exportHint)
	}
	l := &layout{root: root}
	if err := readJSON(filepath.Join(root, ModelIndexFile), &l.index); err != nil {
		return nil, err
	}
	if !strings.Contains(l.index.Class, "StableDiffusionXL") {
		return nil, fmt.Errorf("sdxl: %s: _class_name %q is not an SDXL pipeline (StableDiffusionXLPipeline)", filepath.Join(root, ModelIndexFile), l.index.Class)
	}
	if l.index.Class == "StableDiffusionXLImg2ImgPipeline" || l.index.Class == "StableDiffusionXLInpaintPipeline" {
		return nil, fmt.Errorf("sdxl: %s: %s is not the text-to-image pipeline", filepath.Join(root, ModelIndexFile), l.index.Class)
	}
	for _, d := range []string{dirUNet, dirTextEncoder, dirTextEncoder2, dirVAEEncoder, dirVAEDecoder, dirTokenizer, dirTokenizer2, dirScheduler} {
		fi, err := os.Stat(filepath.Join(root, d))
		if err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("sdxl: %s: missing the component folder %s/; %s", root, d, exportHint)
		}
	}
	if err := readJSON(l.path(dirUNet, ConfigFile), &l.unet); err != nil {
		return nil, err
	}
	if t := l.unet.AdditionEmbedType; t == nil || *t != "text_time" {
		return nil, fmt.Errorf("sdxl: %s: addition_embed_type is not \"text_time\": not an SDXL UNet", l.path(dirUNet, ConfigFile))
	}
	if l.unet.RequiresAesthetic {
		return nil, fmt.Errorf("sdxl: %s: requires_aesthetics_score is true (the SDXL refiner, 5 time ids): use the base model", l.path(dirUNet, ConfigFile))
	}
	for k, d := range []string{dirTextEncoder, dirTextEncoder2} {
		if err := readJSON(l.path(d, ConfigFile), &l.text[k]); err != nil {
			return nil, err
		}
		if c := l.text[k]; c.HiddenSize < 1 || c.Layers < 2 {
			return nil, fmt.Errorf("sdxl: %s: hidden_size %d, num_hidden_layers %d: want a CLIP text config with at least 2 layers (SDXL reads the penultimate)", l.path(d, ConfigFile), c.HiddenSize, c.Layers)
		}
	}
	if err := l.readVAE(); err != nil {
		return nil, err
	}
	if err := l.readScheduler(); err != nil {
		return nil, err
	}
	return l, nil
}

// readVAE reads both VAE configs and checks they describe one VAE.
func (l *layout) readVAE() error {
	var dec vaeConfig
	if err := readJSON(l.path(dirVAEEncoder, ConfigFile), &l.vae); err != nil {
		return err
	}
	if err := readJSON(l.path(dirVAEDecoder, ConfigFile), &dec); err != nil {
		return err
	}
	path := l.path(dirVAEEncoder, ConfigFile)
	v := l.vae
	switch {
	case v.ScalingFactor == nil || dec.ScalingFactor == nil:
		return fmt.Errorf("sdxl: %s or %s has no scaling_factor (SDXL's VAE has 0.13025): export with a diffusers that writes it", path, l.path(dirVAEDecoder, ConfigFile))
	case *v.ScalingFactor != *dec.ScalingFactor:
		return fmt.Errorf("sdxl: %s: scaling_factor %g differs from %s's %g", path, *v.ScalingFactor, l.path(dirVAEDecoder, ConfigFile), *dec.ScalingFactor)
	case !(*v.ScalingFactor > 0):
		return fmt.Errorf("sdxl: %s: scaling_factor %g, want > 0", path, *v.ScalingFactor)
	case v.ShiftFactor != nil && *v.ShiftFactor != 0:
		return fmt.Errorf("sdxl: %s: shift_factor %g: not SDXL's VAE (SD3/Flux shift their latents)", path, *v.ShiftFactor)
	case len(v.BlockOut) < 1 || v.LatentChannels < 1 || v.SampleSize < 1:
		return fmt.Errorf("sdxl: %s: want block_out_channels, latent_channels and sample_size", path)
	}
	l.factor = 1 << (len(v.BlockOut) - 1)
	if v.SampleSize%l.factor != 0 {
		return fmt.Errorf("sdxl: %s: sample_size %d is not a multiple of the VAE's factor %d", path, v.SampleSize, l.factor)
	}
	l.imageSize = v.SampleSize
	if s := l.unet.SampleSize; s != 0 && s != v.SampleSize/l.factor {
		return fmt.Errorf("sdxl: %s: sample_size %d, but the VAE's %d / %d gives latents of %d", l.path(dirUNet, ConfigFile), s, v.SampleSize, l.factor, v.SampleSize/l.factor)
	}
	if c := l.unet.InChannels; c != 0 && c != v.LatentChannels {
		return fmt.Errorf("sdxl: %s: in_channels %d, but the VAE has %d latent channels", l.path(dirUNet, ConfigFile), c, v.LatentChannels)
	}
	return nil
}

// readScheduler reads the training schedule. cocoflow samples with DDIM on the schedule's ᾱ
// (models/diffusion), whatever sampler class the export names (SDXL's is EulerDiscrete).
func (l *layout) readScheduler() error {
	path := l.path(dirScheduler, schedulerFile)
	if err := readJSON(path, &l.sched); err != nil {
		return err
	}
	s := l.sched
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9 }
	switch {
	case s.TrainSteps < 1:
		return fmt.Errorf("sdxl: %s: num_train_timesteps %d, want >= 1", path, s.TrainSteps)
	case len(s.TrainedBetas) > 0:
		return fmt.Errorf("sdxl: %s: trained_betas are not supported (cocoflow builds the schedule from beta_schedule)", path)
	case s.RescaleBetasZS:
		return fmt.Errorf("sdxl: %s: rescale_betas_zero_snr is not supported", path)
	case s.BetaSchedule == diffusion.ScaledLinear && near(s.BetaStart, diffusion.SDBetaStart) && near(s.BetaEnd, diffusion.SDBetaEnd),
		s.BetaSchedule == diffusion.Linear && near(s.BetaStart, diffusion.DDPMBetaStart) && near(s.BetaEnd, diffusion.DDPMBetaEnd):
		l.schedule = s.BetaSchedule
	default:
		return fmt.Errorf("sdxl: %s: beta_schedule %q from %g to %g: cocoflow knows scaled_linear %g-%g (SDXL) and linear %g-%g",
			path, s.BetaSchedule, s.BetaStart, s.BetaEnd, diffusion.SDBetaStart, diffusion.SDBetaEnd, diffusion.DDPMBetaStart, diffusion.DDPMBetaEnd)
	}
	switch s.Prediction {
	case "epsilon", "":
		l.predicts = "epsilon"
	case "v_prediction":
		l.predicts = "v"
	default:
		return fmt.Errorf("sdxl: %s: prediction_type %q, want epsilon or v_prediction", path, s.Prediction)
	}
	// diffusers' leading spacing adds steps_offset (1 for SD and SDXL); models/diffusion's Leading
	// adds 1 as well, so the two visit the same timesteps.
	if s.StepsOffset != nil && *s.StepsOffset != 1 && (s.Spacing == nil || *s.Spacing == diffusion.Leading) {
		return fmt.Errorf("sdxl: %s: steps_offset %d with leading spacing: cocoflow's leading spacing offsets by 1, as SDXL's config does", path, *s.StepsOffset)
	}
	return nil
}

// forceZeros reports whether the unconditional branch gets zero conditioning instead of the
// empty prompt's (diffusers' force_zeros_for_empty_prompt; true for SDXL base, and the default).
func (l *layout) forceZeros() bool { return l.index.ForceZeros == nil || *l.index.ForceZeros }

// readJSON decodes the JSON file at path into v; errors name the file.
func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sdxl: %s is missing; %s", path, exportHint)
	}
	if err != nil {
		return fmt.Errorf("sdxl: %w", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("sdxl: %s: %w", path, err)
	}
	return nil
}

// checkExternalData checks that the external data files a model's initializers name exist
// beside it and are long enough, so that a truncated download fails with a clear error
// instead of ONNX Runtime's. path names the model file.
func checkExternalData(path string, m *onnxgraph.Model) error {
	need := map[string]int64{}
	first := map[string]string{}
	for _, t := range m.Graph.Initializers {
		if !t.IsExternal() {
			continue
		}
		file, err := t.ExternalFile()
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		entry := map[string]string{}
		for _, kv := range t.ExternalData {
			entry[kv.Key] = kv.Value
		}
		off, err1 := strconv.ParseInt(orDefault(entry["offset"], "0"), 10, 64)
		n, err2 := strconv.ParseInt(orDefault(entry["length"], "0"), 10, 64)
		if err1 != nil || err2 != nil || off < 0 || n < 0 {
			return fmt.Errorf("%s: weight %s: bad external data offset %q or length %q", path, t.Name, entry["offset"], entry["length"])
		}
		if end := off + n; end > need[file] || first[file] == "" {
			need[file], first[file] = max(end, need[file]), t.Name
		}
	}
	for file, end := range need {
		fi, err := os.Stat(file)
		if err != nil {
			return fmt.Errorf("%s: its weights are in %s, which is missing (%v): copy the whole component folder", path, file, errors.Unwrap(err))
		}
		if fi.Size() < end {
			return fmt.Errorf("%s is %d bytes, but %s reads its weights up to byte %d (weight %s): the file is truncated; download or export it again", file, fi.Size(), path, end, first[file])
		}
	}
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
