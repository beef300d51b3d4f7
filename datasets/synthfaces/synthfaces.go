// Package synthfaces renders the tiny world of cocoflow: procedural,
// anti-aliased faces of known identities (man, woman, boy, girl, person; and
// cat, dog for the "synthpets" extension) with ground-truth attributes and
// exact subject masks.
//
// An identity is a fixed set of parameters (class, skin, hair, eyes, face
// shape, ... or fur, pattern, ears, snout for pets); every image of an
// identity varies pose, expression, lighting, background scene and
// accessories. Everything is a pure function of (seed, identity, image index):
// renders are bit-identical whatever their order or concurrency. (Across CPU
// architectures a compiler that fuses multiply-adds, as Go does on arm64, may
// move an anti-aliased edge pixel by one level.)
//
// Shapes are analytic and drawn at 4x4 sub-pixels per pixel, then
// box-filtered; the mask is the set of pixels at least half covered by the
// subject (head, hair, neck and shoulders, accessories).
package synthfaces

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
)

// DefaultSize is the image side in pixels used when Config.Size is 0.
const DefaultSize = 32

// Config describes a world.
type Config struct {
	Seed              uint64   // world seed; every pixel is a function of it
	Identities        int      // number of identities, > 0
	ImagesPerIdentity int      // images per identity, > 0
	Size              int      // image side in pixels: a multiple of 8 in 32..128; 0 means DefaultSize
	Classes           []string // class words assigned round-robin to identities; empty means HumanClasses
}

// maxImages bounds Identities*ImagesPerIdentity so that indices fit an int32.
const maxImages = math.MaxInt32

// Validate reports the first invalid field of c as an error that names it and
// says what was expected; it returns nil for a valid config.
func (c Config) Validate() error {
	if c.Identities <= 0 {
		return fmt.Errorf("synthfaces: Config.Identities: want > 0, got %d", c.Identities)
	}
	if c.ImagesPerIdentity <= 0 {
		return fmt.Errorf("synthfaces: Config.ImagesPerIdentity: want > 0, got %d", c.ImagesPerIdentity)
	}
	if int64(c.Identities)*int64(c.ImagesPerIdentity) > maxImages {
		return fmt.Errorf("synthfaces: Config.Identities*ImagesPerIdentity: want <= %d images, got %d*%d",
			maxImages, c.Identities, c.ImagesPerIdentity)
	}
	if c.Size != 0 && (c.Size < 32 || c.Size > 128 || c.Size%8 != 0) {
		return fmt.Errorf("synthfaces: Config.Size: want a multiple of 8 in 32..128 (or 0 for %d), got %d", DefaultSize, c.Size)
	}
	known := append(slices.Clone(HumanClasses), PetClasses...)
	for i, cl := range c.Classes {
		if !slices.Contains(known, cl) {
			return fmt.Errorf("synthfaces: Config.Classes[%d]: unknown class %q (want one of %s)", i, cl, strings.Join(known, ", "))
		}
		if j := slices.Index(c.Classes, cl); j < i {
			return fmt.Errorf("synthfaces: Config.Classes[%d]: duplicate class %q (also at index %d)", i, cl, j)
		}
	}
	return nil
}

// withDefaults fills Size and Classes.
func (c Config) withDefaults() Config {
	if c.Size == 0 {
		c.Size = DefaultSize
	}
	if len(c.Classes) == 0 {
		c.Classes = HumanClasses
	}
	c.Classes = slices.Clone(c.Classes)
	return c
}

// World is a validated config with its identities drawn. It is read-only
// after New, so its methods are safe for concurrent use.
type World struct {
	cfg Config
	ids []Identity
}

// Attempts when drawing an identity: first try for a new coarse look (class,
// skin, hair colour, hair style — or fur, pattern, ears), then for any new
// discrete tuple.
const (
	coarseAttempts = 64
	fullAttempts   = 4096
)

// New validates cfg, fills defaults and draws the identities. Identities are
// drawn in order, each redrawn (deterministically) until its tuple of discrete
// attributes is new, so identity i does not depend on Config.Identities. It
// returns an error naming the field when cfg is invalid or asks for more
// identities of a class than there are distinct attribute tuples.
func New(cfg Config) (*World, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	w := &World{cfg: cfg, ids: make([]Identity, cfg.Identities)}
	coarse := map[string]bool{}
	full := map[string]bool{}
	coarseSpent := map[string]bool{} // classes whose coarse looks ran out
	for i := range w.ids {
		class := cfg.Classes[i%len(cfg.Classes)]
		found := false
		for attempt := 0; attempt < fullAttempts && !found; attempt++ {
			r := rand.New(rand.NewPCG(streamSeed(cfg.Seed, streamIdentity, uint64(i), uint64(attempt))))
			id := newIdentity(r, i, class)
			ck, fk := id.coarseKey(), id.fullKey()
			wantCoarse := !coarseSpent[class] && attempt < coarseAttempts
			if full[fk] || (wantCoarse && coarse[ck]) {
				if wantCoarse && attempt == coarseAttempts-1 {
					coarseSpent[class] = true
				}
				continue
			}
			coarse[ck], full[fk] = true, true
			w.ids[i] = id
			found = true
		}
		if !found {
			return nil, fmt.Errorf("synthfaces: Config.Identities: %d identities exhaust the distinct %q identities (stopped at identity %d)",
				cfg.Identities, class, i)
		}
	}
	return w, nil
}

// Config returns the world's config with defaults filled in.
func (w *World) Config() Config {
	c := w.cfg
	c.Classes = slices.Clone(c.Classes)
	return c
}

// Len returns the number of images of the world, Identities*ImagesPerIdentity.
func (w *World) Len() int { return w.cfg.Identities * w.cfg.ImagesPerIdentity }

// Identity returns identity id (a copy, safe to modify); it returns the zero
// Identity with Index -1 when id is out of range.
func (w *World) Identity(id int) Identity {
	if id < 0 || id >= len(w.ids) {
		return Identity{Index: -1}
	}
	return w.ids[id].clone()
}

// Sample is one rendered image with its ground truth.
type Sample struct {
	ID         string            // stable name, "sf-<identity:06d>-<index:02d>"
	Identity   int               // identity index
	Index      int               // image index within the identity
	Class      string            // class word
	Scene      string            // background scene, one of Scenes
	Attributes map[string]string // identity-level and image-level attributes (keys of ClassKeys(Class))
	Image      *image.NRGBA      // Size x Size, opaque RGB
	Mask       *image.Gray       // Size x Size, 255 on the subject, 0 elsewhere
}

// Render draws image index of identity. The result depends only on the world
// seed, identity and index. It returns an error naming the argument when
// either is out of range.
func (w *World) Render(identity, index int) (Sample, error) {
	return w.render(identity, index, nil)
}

// At renders the i-th image of the world in identity-major order (identity
// i / ImagesPerIdentity, index i % ImagesPerIdentity); it returns an error
// when i is outside [0, Len()).
func (w *World) At(i int) (Sample, error) {
	if i < 0 || i >= w.Len() {
		return Sample{}, fmt.Errorf("synthfaces: At: image %d out of range [0, %d)", i, w.Len())
	}
	return w.render(i/w.cfg.ImagesPerIdentity, i%w.cfg.ImagesPerIdentity, nil)
}

// render draws one image; adjust, when non-nil, edits the drawn variation
// before drawing (a test hook to pin pose or scene).
func (w *World) render(identity, index int, adjust func(*variation)) (Sample, error) {
	if identity < 0 || identity >= len(w.ids) {
		return Sample{}, fmt.Errorf("synthfaces: Render: identity %d out of range [0, %d)", identity, len(w.ids))
	}
	if index < 0 || index >= w.cfg.ImagesPerIdentity {
		return Sample{}, fmt.Errorf("synthfaces: Render: image index %d out of range [0, %d)", index, w.cfg.ImagesPerIdentity)
	}
	id := &w.ids[identity]
	r := rand.New(rand.NewPCG(streamSeed(w.cfg.Seed, streamImage, uint64(identity), uint64(index))))
	v := drawVariation(r, id)
	if adjust != nil {
		adjust(&v)
	}
	size := w.cfg.Size
	c := getCanvas(size * superSample)
	defer canvasPool.Put(c)
	sr := rand.New(rand.NewPCG(streamSeed(w.cfg.Seed, streamScene, uint64(identity), uint64(index))))
	drawScene(c, v.scene, sr)
	if isPet(id.Class) {
		drawPet(c, id, &v)
	} else {
		drawHuman(c, id, &v)
	}
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	mask := image.NewGray(image.Rect(0, 0, size, size))
	c.downsample(img, mask, v.light())

	attrs := make(map[string]string, 16)
	for k, val := range id.Attributes {
		attrs[k] = val
	}
	v.attributes(id.Class, attrs)
	return Sample{
		ID:         fmt.Sprintf("sf-%06d-%02d", identity, index),
		Identity:   identity,
		Index:      index,
		Class:      id.Class,
		Scene:      v.scene,
		Attributes: attrs,
		Image:      img,
		Mask:       mask,
	}, nil
}

// Random streams: every draw comes from a PCG stream seeded by a hash of
// (world seed, stream kind, a, b).
const (
	streamIdentity = 1 + iota
	streamImage
	streamScene
)

// mix64 is the SplitMix64 finalizer, a bijective 64-bit hash.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// streamSeed hashes (seed, kind, a, b) into the two words of a PCG seed.
func streamSeed(seed, kind, a, b uint64) (uint64, uint64) {
	h := mix64(seed + 0x9e3779b97f4a7c15)
	h = mix64(h ^ kind*0xd6e8feb86659fd93)
	h = mix64(h ^ a*0xa0761d6478bd642f)
	h = mix64(h ^ b*0xe7037ed1a0b428db)
	return h, mix64(h ^ 0x8ebc6af09c88c6e3)
}
