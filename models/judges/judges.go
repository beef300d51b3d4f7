// Package judges is the contract between the evaluate stage and the models that score its
// images (paper §4.2): an identity encoder for Face Sim and Face Div (ArcFace's role), an
// image-text model for CLIP-T (CLIP's role) and an image-similarity model for the Scenes
// table's subject similarity (DreamSim's role). The tiny world's own encoders and the paper's
// ONNX models implement the same interfaces and register under a kind, so that evaluate names a
// judge in its YAML and scores every method's images, its own and other systems', the same way.
package judges

import (
	"fmt"
	"image"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Face embeds the identity of the most prominent face of each image.
type Face interface {
	// Embed returns one L2-normalised identity embedding per image; found[i] is false (and
	// emb[i] nil) when image i has no face the judge can see. An error is for a broken
	// model or image, never for a missing face.
	Embed(imgs []image.Image) (emb [][]float32, found []bool, err error)
	Close() error
}

// ImageText embeds images and texts into one space, compared by cosine (CLIP-T).
type ImageText interface {
	EmbedImages(imgs []image.Image) ([][]float32, error)
	EmbedTexts(texts []string) ([][]float32, error)
	Close() error
}

// ImageSim embeds images for a perceptual similarity: 1 − cosine is the judge's distance
// (DreamSim), so cosine is the similarity the tables report.
type ImageSim interface {
	EmbedImages(imgs []image.Image) ([][]float32, error)
	Close() error
}

// Spec names a judge as a config gives it: its kind (a registered name), the model folder or
// file ("" for the kind's built-in default, where it has one) and kind-specific options
// (insightface's "detector": scrfd or ultraface, say).
type Spec struct {
	Kind    string
	Path    string
	Options map[string]string
}

// Opener opens the judge of one kind. Digest returns a stable digest of the model files a
// spec names, so stage outputs are recomputed when a model changes.
type Opener[J any] struct {
	Open   func(s Spec) (J, error)
	Digest func(s Spec) (string, error)
	Doc    string
}

// Registry holds the kinds of one judge role.
type Registry[J any] struct {
	role  string
	mu    sync.Mutex
	kinds map[string]Opener[J]
}

// The three roles.
var (
	Faces      = &Registry[Face]{role: "face judge"}
	ImageTexts = &Registry[ImageText]{role: "image-text judge"}
	ImageSims  = &Registry[ImageSim]{role: "image-similarity judge"}
)

// Register adds a kind; registering a kind twice panics (a programming error).
func (r *Registry[J]) Register(kind string, o Opener[J]) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.kinds == nil {
		r.kinds = map[string]Opener[J]{}
	}
	if _, dup := r.kinds[kind]; dup {
		panic(fmt.Sprintf("judges: %s kind %q registered twice", r.role, kind))
	}
	r.kinds[kind] = o
}

// Lookup returns the opener of kind, or an error listing the kinds there are.
func (r *Registry[J]) Lookup(kind string) (Opener[J], error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o, ok := r.kinds[kind]
	if !ok {
		return o, fmt.Errorf("unknown %s %q (known: %s)", r.role, kind, strings.Join(r.kindsLocked(), ", "))
	}
	return o, nil
}

// Kinds lists the registered kinds, sorted.
func (r *Registry[J]) Kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.kindsLocked()
}

func (r *Registry[J]) kindsLocked() []string {
	ks := make([]string, 0, len(r.kinds))
	for k := range r.kinds {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return slices.Clip(ks)
}

// Open opens the judge s names.
func (r *Registry[J]) Open(s Spec) (J, error) {
	o, err := r.Lookup(s.Kind)
	if err != nil {
		var zero J
		return zero, err
	}
	return o.Open(s)
}

// Digest returns the digest of the model files s names.
func (r *Registry[J]) Digest(s Spec) (string, error) {
	o, err := r.Lookup(s.Kind)
	if err != nil {
		return "", err
	}
	return o.Digest(s)
}
