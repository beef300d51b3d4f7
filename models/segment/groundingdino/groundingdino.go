// Package groundingdino runs Grounding DINO, the open-set detector Grounded SAM 2 uses for
// text-prompted boxes, as the common public ONNX export (GroundingDINO's export_openvino.py and
// the copies Grounded-SAM-2 users run):
//
//	img             float32 [1,3,H,W]  ImageNet-normalised; also named pixel_values, inputs, samples
//	input_ids       int64   [1,L]      BERT WordPiece ids of the caption, [CLS] ... [SEP]
//	attention_mask  bool    [1,L]      all true (one caption, no padding)
//	position_ids    int64   [1,L]      restarting at 0 after every [CLS], [SEP], "." and "?"
//	token_type_ids  int64   [1,L]      zeros
//	text_token_mask bool    [1,L,L]    tokens attend only within their phrase
//	logits          float32 [1,900,256] per query and text position, before the sigmoid
//	boxes           float32 [1,900,4]  cx, cy, w, h relative to the image
//
// Integer and mask inputs are fed in the dtype the model declares (int32, float32 exports
// exist); position_ids and text_token_mask are fed when the model has them (exports that build
// them inside the graph do not). Exports without dynamic axes get the image resized to their
// fixed size and the caption padded to their fixed length. The caption is the phrases joined by " . " and ended with
// " .", as Grounding DINO's inference does; a box scores the sigmoid of its best text position,
// passes when that is above the box threshold, and names the phrase whose tokens pass the text
// threshold (groundingdino.util.inference.predict).
package groundingdino

import (
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/cocoflow/cocoflow/models/runtime/ort"
	"github.com/cocoflow/cocoflow/models/segment"
	"github.com/cocoflow/cocoflow/models/text/wordpiece"
)

// Defaults of Grounding DINO's inference (Grounded-SAM-2's demos use the same thresholds).
const (
	DefaultBoxThreshold  = 0.35
	DefaultTextThreshold = 0.25
	ShortSide            = 800  // T.RandomResize([800], max_size=1333)
	MaxSide              = 1333 //
	MaxTextLen           = 256  // max_text_len: text positions of logits
)

// Names of the export's inputs and outputs.
var (
	imageInputs  = []string{"img", "pixel_values", "inputs", "samples"}
	textInputs   = []string{"input_ids", "attention_mask", "token_type_ids"} // always needed
	optionInputs = []string{"position_ids", "text_token_mask", "pixel_mask"} // fed when declared
	logitsNames  = []string{"logits", "pred_logits"}
	boxesNames   = []string{"boxes", "pred_boxes"}
)

// specialTokens are the tokens that end a phrase in the text-token mask
// (generate_masks_with_special_tokens_and_transfer_map's special_tokens_list).
var specialTokens = []string{wordpiece.CLS, wordpiece.SEP, ".", "?"}

// Detector is an opened Grounding DINO export and its tokenizer. Detect may be called from
// many goroutines at once.
type Detector struct {
	sess          *ort.Session
	tok           *wordpiece.Tokenizer
	inputs        map[string]ort.TensorInfo
	image         string // the image input's name
	logits, boxes string // output names
	specials      map[int32]bool
}

// Files resolves path to the model file and its vocab.txt: path is the .onnx file (vocab.txt
// beside it) or a folder holding exactly one .onnx file and vocab.txt. It does not check that
// vocab.txt exists.
func Files(path string) (model, vocab string, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", "", fmt.Errorf("grounding dino model: %w", err)
	}
	model = path
	if fi.IsDir() {
		found, _ := filepath.Glob(filepath.Join(path, "*.onnx"))
		if len(found) != 1 {
			return "", "", fmt.Errorf("grounding dino model %s: want exactly one .onnx file in the folder, found %d", path, len(found))
		}
		model = found[0]
	}
	return model, filepath.Join(filepath.Dir(model), wordpiece.VocabFile), nil
}

// Open loads the export at path (see Files) with ONNX Runtime options opt. A model without the
// text inputs, or with inputs or outputs this package does not know, is an error naming the
// file and the names.
func Open(path string, opt ort.Options) (*Detector, error) {
	model, vocab, err := Files(path)
	if err != nil {
		return nil, err
	}
	sess, err := ort.Open(model, opt)
	if err != nil {
		return nil, err
	}
	d := &Detector{inputs: map[string]ort.TensorInfo{}, specials: map[int32]bool{}}
	if err := d.bind(model, sess); err != nil {
		sess.Close()
		return nil, err
	}
	if err := d.loadVocab(model, vocab); err != nil {
		sess.Close()
		return nil, err
	}
	d.sess = sess
	return d, nil
}

// loadVocab reads the BERT vocabulary beside model and finds the special tokens in it.
func (d *Detector) loadVocab(model, vocab string) error {
	if _, err := os.Stat(vocab); err != nil {
		return fmt.Errorf("grounding dino model %s: its BERT vocabulary %s is missing (bert-base-uncased's vocab.txt goes beside the model)", model, vocab)
	}
	tok, err := wordpiece.Load(vocab)
	if err != nil {
		return err
	}
	for _, s := range specialTokens {
		id, ok := tok.TokenID(s)
		if !ok {
			return fmt.Errorf("grounding dino vocabulary %s has no %q token", vocab, s)
		}
		d.specials[id] = true
	}
	d.tok = tok
	return nil
}

// bind checks the session's signature and records the names it uses.
func (d *Detector) bind(model string, sess *ort.Session) error {
	ins, outs := sess.Inputs(), sess.Outputs()
	found := fmt.Sprintf("(found inputs %s; outputs %s)", segment.List(segment.Names(ins)), segment.List(segment.Names(outs)))
	if miss := segment.Missing(ins, textInputs...); len(miss) > 0 {
		return fmt.Errorf("grounding dino model %s has no text inputs %s %s: it needs the export with the caption's tokens as inputs (input_ids, attention_mask, position_ids, token_type_ids, text_token_mask)",
			model, segment.List(miss), found)
	}
	known := append(append(append([]string{}, imageInputs...), textInputs...), optionInputs...)
	for _, in := range ins {
		if !slices.Contains(known, in.Name) {
			return fmt.Errorf("grounding dino model %s: unknown input %q %s", model, in.Name, found)
		}
		if slices.Contains(imageInputs, in.Name) {
			if d.image != "" {
				return fmt.Errorf("grounding dino model %s: two image inputs %s and %s", model, d.image, in.Name)
			}
			d.image = in.Name
		}
		d.inputs[in.Name] = in
	}
	if d.image == "" {
		return fmt.Errorf("grounding dino model %s has no image input (one of %s) %s", model, segment.List(imageInputs), found)
	}
	for _, o := range outs {
		switch {
		case slices.Contains(logitsNames, o.Name):
			d.logits = o.Name
		case slices.Contains(boxesNames, o.Name):
			d.boxes = o.Name
		}
	}
	if d.logits == "" || d.boxes == "" {
		return fmt.Errorf("grounding dino model %s: want outputs logits and boxes (or pred_logits and pred_boxes) %s", model, found)
	}
	return nil
}

// Path returns the model file.
func (d *Detector) Path() string { return d.sess.Path() }

// Close releases the session.
func (d *Detector) Close() error { return d.sess.Close() }

// Caption joins phrases into Grounding DINO's caption: lower-cased, trimmed, each without its
// own trailing dots, joined by " . " and ended with " ." ("face" -> "face .").
func Caption(phrases ...string) string {
	var parts []string
	for _, p := range phrases {
		p = strings.TrimSpace(strings.TrimRight(strings.TrimSpace(strings.ToLower(p)), "."))
		if p != "" {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, " . ") + " ."
}

// Text is a caption's text inputs.
type Text struct {
	IDs       []int32 // [CLS] ... [SEP]
	Positions []int64 // position_ids
	// Mask is text_token_mask, L x L row-major: token i attends to token j.
	Mask []bool
	// Phrase is, per token, the index of the phrase it belongs to, -1 for special tokens.
	Phrase  []int
	Phrases []string // the phrases, as the caption spells them
}

// Len returns the number of tokens L.
func (t Text) Len() int { return len(t.IDs) }

// Tokenize makes the text inputs of caption (see Caption): its WordPiece ids, and the position
// ids and block-diagonal self-attention mask of
// generate_masks_with_special_tokens_and_transfer_map: the tokens from after one special token
// ([CLS], [SEP], ".", "?") up to and including the next attend to each other, with positions
// 0, 1, ... restarting there; the first and last tokens attend to themselves at position 0.
// A caption of more than MaxTextLen tokens is an error.
func (d *Detector) Tokenize(caption string) (Text, error) {
	enc := d.tok.Encode(caption)
	L := len(enc.IDs)
	if L > MaxTextLen {
		return Text{}, fmt.Errorf("grounding dino caption %q is %d tokens; the model reads at most %d", caption, L, MaxTextLen)
	}
	t := Text{IDs: enc.IDs, Positions: make([]int64, L), Mask: make([]bool, L*L), Phrase: make([]int, L)}
	for i := range L {
		t.Mask[i*L+i] = true
		t.Phrase[i] = -1
	}
	prev := 0
	for col, id := range enc.IDs {
		if !d.specials[id] {
			continue
		}
		if col == 0 || col == L-1 {
			t.Positions[col] = 0
		} else {
			for r := prev + 1; r <= col; r++ {
				for c := prev + 1; c <= col; c++ {
					t.Mask[r*L+c] = true
				}
				t.Positions[r] = int64(r - prev - 1)
			}
			if col > prev+1 { // a phrase: the tokens strictly between the two specials
				var words []string
				last := -1
				for k := prev + 1; k < col; k++ {
					t.Phrase[k] = len(t.Phrases)
					if w := enc.WordOf[k]; w != last {
						words = append(words, enc.Words[w])
						last = w
					}
				}
				t.Phrases = append(t.Phrases, strings.Join(words, " "))
			}
		}
		prev = col
	}
	return t, nil
}

// Thresholds are the box and text thresholds of a detection.
type Thresholds struct{ Box, Text float64 }

// DefaultThresholds are Grounding DINO's 0.35 and 0.25.
var DefaultThresholds = Thresholds{DefaultBoxThreshold, DefaultTextThreshold}

// Detection is one box that passed the thresholds.
type Detection struct {
	Box    segment.Box // in pixels of the image given to Detect
	Score  float64     // the sigmoid of the box's best text position
	Phrase string      // the phrase of the caption whose tokens passed the text threshold
	Query  int         // the query (0..899) that made it
}

// ErrNoBox is returned by Best when no box passes the thresholds.
var ErrNoBox = errors.New("no box passes the thresholds")

// InputSize returns the model input's width and height for a w x h image: the size the model
// declares when it is static, else the short side scaled to ShortSide unless the long side
// would pass MaxSide (torchvision's get_size_with_aspect_ratio in Grounding DINO's transforms).
func (d *Detector) InputSize(w, h int) (int, int) {
	if s := d.inputs[d.image].Shape; len(s) == 4 && s[2] > 0 && s[3] > 0 {
		return int(s[3]), int(s[2])
	}
	return ResizeTo(w, h, ShortSide, MaxSide)
}

// ResizeTo is get_size_with_aspect_ratio: the w x h image's size with its short side size, or
// smaller so that the long side stays within maxSize.
func ResizeTo(w, h, size, maxSize int) (int, int) {
	lo, hi := float64(min(w, h)), float64(max(w, h))
	if hi/lo*float64(size) > float64(maxSize) {
		size = int(math.RoundToEven(float64(maxSize) * lo / hi))
	}
	if (w <= h && w == size) || (h <= w && h == size) {
		return w, h
	}
	if w < h {
		return size, int(float64(size) * float64(h) / float64(w))
	}
	return int(float64(size) * float64(w) / float64(h)), size
}

// Detect runs the model on img with the caption of phrases and returns the boxes that pass th,
// best first. Errors name the model file.
func (d *Detector) Detect(img image.Image, th Thresholds, phrases ...string) ([]Detection, error) {
	caption := Caption(phrases...)
	if caption == "" {
		return nil, fmt.Errorf("grounding dino: empty prompt")
	}
	text, err := d.Tokenize(caption)
	if err != nil {
		return nil, err
	}
	b := img.Bounds()
	W, H := b.Dx(), b.Dy()
	if W == 0 || H == 0 {
		return nil, fmt.Errorf("grounding dino: empty image")
	}
	feeds, err := d.feeds(img, text)
	if err != nil {
		return nil, fmt.Errorf("grounding dino model %s: %w", d.Path(), err)
	}
	out, err := d.sess.Run(feeds)
	if err != nil {
		return nil, err
	}
	logits, lshape, err := floats(out[d.logits], 3)
	if err != nil {
		return nil, fmt.Errorf("grounding dino model %s: output %s: %w", d.Path(), d.logits, err)
	}
	boxes, bshape, err := floats(out[d.boxes], 3)
	if err != nil {
		return nil, fmt.Errorf("grounding dino model %s: output %s: %w", d.Path(), d.boxes, err)
	}
	nq, npos := int(lshape[1]), int(lshape[2])
	if bshape[1] != lshape[1] || bshape[2] != 4 || npos < text.Len() {
		return nil, fmt.Errorf("grounding dino model %s: logits %v and boxes %v do not fit %d text tokens", d.Path(), lshape, bshape, text.Len())
	}
	var dets []Detection
	for q := range nq {
		row := logits[q*npos : q*npos+text.Len()]
		score, best := -1.0, -1 // the best position's sigmoid; the best phrase token above th.Text
		for j, l := range row {
			s := sigmoid(l)
			score = max(score, s)
			if text.Phrase[j] >= 0 && s > th.Text && (best < 0 || l > row[best]) {
				best = j
			}
		}
		if score <= th.Box || best < 0 {
			continue
		}
		cx, cy, bw, bh := float64(boxes[4*q]), float64(boxes[4*q+1]), float64(boxes[4*q+2]), float64(boxes[4*q+3])
		box := segment.Box{
			X0: (cx - bw/2) * float64(W), Y0: (cy - bh/2) * float64(H),
			X1: (cx + bw/2) * float64(W), Y1: (cy + bh/2) * float64(H),
		}.Clamp(W, H)
		dets = append(dets, Detection{Box: box, Score: score, Phrase: text.Phrases[text.Phrase[best]], Query: q})
	}
	sort.SliceStable(dets, func(i, j int) bool { return dets[i].Score > dets[j].Score })
	return dets, nil
}

// Best returns the highest-scoring box for the phrases, or an error wrapping ErrNoBox that says
// which thresholds none passed.
func (d *Detector) Best(img image.Image, th Thresholds, phrases ...string) (Detection, error) {
	dets, err := d.Detect(img, th, phrases...)
	if err != nil {
		return Detection{}, err
	}
	if len(dets) == 0 {
		return Detection{}, fmt.Errorf("%w: %q at box threshold %g, text threshold %g", ErrNoBox, Caption(phrases...), th.Box, th.Text)
	}
	return dets[0], nil
}

// feeds builds the model's inputs for img and text, each in the dtype the model declares. An
// export with a fixed sequence length (dynamic_axes=None) gets the caption padded with [PAD]
// as the tokenizer's padding="max_length" would: outside the attention mask, each pad
// attending to itself at position 0.
func (d *Detector) feeds(img image.Image, text Text) (map[string]ort.Tensor, error) {
	b := img.Bounds()
	w, h := d.InputSize(b.Dx(), b.Dy())
	n := text.Len()
	L := n
	if s := d.inputs["input_ids"].Shape; len(s) == 2 && s[1] > 0 {
		if L = int(s[1]); L < n {
			return nil, fmt.Errorf("the caption is %d tokens, the model's fixed text length %d", n, L)
		}
	}
	ids, att, pos, mask := make([]float64, L), make([]float64, L), make([]float64, L), make([]float64, L*L)
	for i := range L {
		ids[i] = float64(d.tok.Pad())
		mask[i*L+i] = 1
	}
	for i := range n {
		ids[i], att[i], pos[i] = float64(text.IDs[i]), 1, float64(text.Positions[i])
		for j := range n {
			if text.Mask[i*n+j] {
				mask[i*L+j] = 1
			}
		}
	}
	seq := []int64{1, int64(L)}
	feeds := map[string]ort.Tensor{d.image: segment.Tensor(img, w, h)}
	for name, in := range d.inputs {
		var t ort.Tensor
		var err error
		switch name {
		case d.image:
			continue
		case "input_ids":
			t, err = segment.Values(in.DType, seq, ids)
		case "attention_mask":
			t, err = segment.Values(in.DType, seq, att)
		case "token_type_ids":
			t, err = segment.Filled(in.DType, seq, 0)
		case "position_ids":
			t, err = segment.Values(in.DType, seq, pos)
		case "text_token_mask":
			t, err = segment.Values(in.DType, []int64{1, int64(L), int64(L)}, mask)
		case "pixel_mask":
			t, err = segment.Filled(in.DType, []int64{1, int64(h), int64(w)}, 1)
		}
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", name, err)
		}
		feeds[name] = t
	}
	return feeds, nil
}

// floats returns a float32 output of the given rank with batch 1, and its shape.
func floats(t ort.Tensor, rank int) ([]float32, []int64, error) {
	v, err := ort.Data[float32](t)
	if err != nil {
		return nil, nil, err
	}
	if len(t.Shape) != rank || t.Shape[0] != 1 {
		return nil, nil, fmt.Errorf("shape %v, want rank %d with batch 1", t.Shape, rank)
	}
	return v, t.Shape, nil
}

func sigmoid(x float32) float64 { return 1 / (1 + math.Exp(-float64(x))) }
