package stages

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"

	"github.com/cocoflow/cocoflow/datasets/afhq"
	"github.com/cocoflow/cocoflow/datasets/celeba"
	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/datasets/synthfaces"
	"github.com/cocoflow/cocoflow/pipeline"
)

type ingestParams struct {
	Dataset           string   `param:"dataset" default:"synthfaces" enum:"synthfaces,synthpets,celeba,afhq" doc:"dataset to read"`
	Root              string   `param:"root" doc:"dataset folder (celeba, afhq)"`
	Identities        int      `param:"identities" default:"300" min:"1" doc:"identities to render (synthetic)"`
	ImagesPerIdentity int      `param:"images_per_identity" default:"8" min:"1" doc:"images per identity (synthetic)"`
	Classes           []string `param:"classes" doc:"class words (synthetic; default: man, woman, boy, girl, person, or cat, dog for synthpets)"`
	Size              int      `param:"size" default:"32" min:"0" doc:"image side in pixels; real photos are center-cropped and resized (0 keeps their size)"`
	TestFraction      float64  `param:"test_fraction" default:"0.1" min:"0" max:"0.9" doc:"share of identities held out as split=test (synthetic)"`
	Split             string   `param:"split" default:"all" enum:"all,train,val,test" doc:"partition to read (celeba, afhq)"`
	MaxIdentities     int      `param:"max_identities" default:"0" min:"0" doc:"keep only the first N identities (celeba; 0 = all)"`
	MinImages         int      `param:"min_images_per_identity" default:"0" min:"0" doc:"drop identities with fewer images (celeba)"`
	Limit             int      `param:"limit" default:"0" min:"0" doc:"read at most N images (0 = all)"`
	ShardSize         int      `param:"shard_size" default:"256" min:"1" doc:"images per shard"`
}

func init() {
	pipeline.Register(pipeline.Spec[ingestParams]{
		Name:    "ingest",
		Version: "2", // 2: synthfaces draws class-typed hair and smaller, lower children
		Doc: "Reads a dataset into image shards: the procedural synthfaces/synthpets worlds (rendered " +
			"from the run seed, with identities, attributes, scenes and exact masks) or real CelebA / " +
			"AFHQ folders as distributed. Images are stored as PNG bytes (real JPEGs stay JPEG when not resized).",
		Outputs: []pipeline.Port{{Name: "images", Doc: "one row per image", Schema: ImageRow{}}},
		Sharded: true,
		Check: func(p *ingestParams) error {
			if (p.Dataset == "celeba" || p.Dataset == "afhq") && p.Root == "" {
				return fmt.Errorf("dataset %s needs root: the folder holding it", p.Dataset)
			}
			if p.Root != "" {
				if fi, err := os.Stat(p.Root); err != nil {
					return pipeline.ParamErr("root", fmt.Errorf("dataset %s: %w", p.Dataset, err))
				} else if !fi.IsDir() {
					return pipeline.ParamErr("root", fmt.Errorf("dataset %s: %s is not a folder", p.Dataset, p.Root))
				}
			}
			return nil
		},
		Run: runIngest,
	})
}

// source is a dataset seen as a list of images that can be read independently.
type source interface {
	Len() int
	Row(i int) (ImageRow, error)
}

func runIngest(ctx context.Context, job *pipeline.Job, p *ingestParams) error {
	src, err := openSource(job.Seed, p)
	if err != nil {
		return err
	}
	n := src.Len()
	if p.Limit > 0 {
		n = min(n, p.Limit)
	}
	shards := (n + p.ShardSize - 1) / p.ShardSize
	job.Record("images", n)
	return pipeline.MapShards(ctx, job, job.Output("images"), shards, func(ctx context.Context, shard int) ([]ImageRow, error) {
		lo, hi := shard*p.ShardSize, min((shard+1)*p.ShardSize, n)
		rows := make([]ImageRow, 0, hi-lo)
		for i := lo; i < hi; i++ {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			row, err := src.Row(i)
			if err != nil {
				return nil, err
			}
			rows = append(rows, row)
		}
		return rows, nil
	})
}

func openSource(seed uint64, p *ingestParams) (source, error) {
	switch p.Dataset {
	case "synthfaces", "synthpets":
		classes := p.Classes
		if len(classes) == 0 && p.Dataset == "synthpets" {
			classes = synthfaces.PetClasses
		}
		w, err := synthfaces.New(synthfaces.Config{
			Seed: seed, Identities: p.Identities, ImagesPerIdentity: p.ImagesPerIdentity,
			Size: p.Size, Classes: classes,
		})
		if err != nil {
			return nil, err
		}
		return &synthSource{world: w, name: p.Dataset, testFraction: p.TestFraction, seed: seed}, nil
	case "celeba":
		split := p.Split
		if split == "all" {
			split = ""
		}
		ds, err := celeba.Open(p.Root, celeba.Options{Split: split, MaxIdentities: p.MaxIdentities, MinImagesPerIdentity: p.MinImages, Limit: p.Limit})
		if err != nil {
			return nil, err
		}
		return &celebaSource{ds: ds, size: p.Size}, nil
	case "afhq":
		split := p.Split
		if split == "all" {
			split = ""
		}
		ds, err := afhq.Open(p.Root, afhq.Options{Split: split, Limit: p.Limit})
		if err != nil {
			return nil, err
		}
		return &afhqSource{ds: ds, size: p.Size}, nil
	}
	return nil, fmt.Errorf("unknown dataset %q", p.Dataset)
}

type synthSource struct {
	world        *synthfaces.World
	name         string
	testFraction float64
	seed         uint64
}

func (s *synthSource) Len() int { return s.world.Len() }

func (s *synthSource) Row(i int) (ImageRow, error) {
	smp, err := s.world.At(i)
	if err != nil {
		return ImageRow{}, err
	}
	img, err := imageio.PNG(smp.Image)
	if err != nil {
		return ImageRow{}, fmt.Errorf("image %s: %w", smp.ID, err)
	}
	mask, err := imageio.PNG(smp.Mask)
	if err != nil {
		return ImageRow{}, fmt.Errorf("mask of %s: %w", smp.ID, err)
	}
	b := smp.Image.Bounds()
	return ImageRow{
		ID: smp.ID, Source: s.name, Identity: int64(smp.Identity), Class: smp.Class, Scene: smp.Scene,
		Split:      identitySplit(s.seed, int64(smp.Identity), s.testFraction),
		Attributes: smp.Attributes, Width: int32(b.Dx()), Height: int32(b.Dy()),
		Format: "png", Image: img, Mask: mask,
	}, nil
}

// identitySplit holds out a deterministic fraction of identities as "test", so that identity
// metrics are measured on identities no model saw in training.
func identitySplit(seed uint64, identity int64, testFraction float64) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%d", seed, identity)
	if float64(h.Sum64()%10000)/10000 < testFraction {
		return "test"
	}
	return "train"
}

type celebaSource struct {
	ds   *celeba.Dataset
	size int
}

func (s *celebaSource) Len() int { return s.ds.Len() }

func (s *celebaSource) Row(i int) (ImageRow, error) {
	rec := s.ds.Records()[i]
	attrs := map[string]string{}
	for k, v := range rec.Attributes.Map() {
		attrs[k] = map[bool]string{true: "1", false: "-1"}[v]
	}
	row := ImageRow{
		ID: "celeba-" + trimExt(rec.File), Source: "celeba", Identity: int64(rec.Identity),
		Class: celebaClass(rec.Attributes), Split: partitionName(rec.Partition), Attributes: attrs,
	}
	data, format, err := s.ds.ImageBytes(rec)
	if err != nil {
		return ImageRow{}, err
	}
	var lm []float32
	if rec.Landmarks != nil {
		for _, pt := range rec.Landmarks {
			lm = append(lm, pt[0], pt[1])
		}
	}
	return fitReal(row, s.ds.Path(rec), data, format, lm, s.size)
}

// celebaClass names the concept word of a CelebA face from its attributes.
func celebaClass(a celeba.Attributes) string {
	if a.Has("Male") {
		return "man"
	}
	return "woman"
}

func partitionName(p celeba.Partition) string {
	switch p {
	case celeba.Train:
		return "train"
	case celeba.Val:
		return "val"
	case celeba.Test:
		return "test"
	}
	return "train"
}

type afhqSource struct {
	ds   *afhq.Dataset
	size int
}

func (s *afhqSource) Len() int { return s.ds.Len() }

func (s *afhqSource) Row(i int) (ImageRow, error) {
	rec := s.ds.Records()[i]
	data, format, err := s.ds.ImageBytes(rec)
	if err != nil {
		return ImageRow{}, err
	}
	row := ImageRow{
		ID: "afhq-" + rec.Split + "-" + rec.Class + "-" + trimExt(rec.File), Source: "afhq", Identity: -1,
		Class: rec.Class, Split: rec.Split, Attributes: map[string]string{},
	}
	return fitReal(row, s.ds.Path(rec), data, format, nil, s.size)
}

// fitReal stores a real photo read from path (encoded as data, in format): as is when no
// resizing is asked for, else center-cropped and resized to size x size as PNG (landmarks are
// mapped into the new frame). An image that does not decode is an error naming path.
func fitReal(row ImageRow, path string, data []byte, format string, landmarks []float32, size int) (ImageRow, error) {
	img, err := imageio.DecodeAs(data, format)
	if err != nil {
		return ImageRow{}, fmt.Errorf("%s: %w", path, err)
	}
	b := img.Bounds()
	if size <= 0 || (b.Dx() == size && b.Dy() == size) {
		row.Width, row.Height, row.Format, row.Image, row.Landmarks = int32(b.Dx()), int32(b.Dy()), format, data, landmarks
		return row, nil
	}
	side := min(b.Dx(), b.Dy())
	x0, y0 := float32(b.Dx()-side)/2, float32(b.Dy()-side)/2
	scale := float32(size) / float32(side)
	for k := 0; k+1 < len(landmarks); k += 2 {
		landmarks[k] = (landmarks[k] - x0) * scale
		landmarks[k+1] = (landmarks[k+1] - y0) * scale
	}
	enc, err := imageio.PNG(imageio.Square(img, size))
	if err != nil {
		return ImageRow{}, fmt.Errorf("image %s: %w", row.ID, err)
	}
	row.Width, row.Height, row.Format, row.Image, row.Landmarks = int32(size), int32(size), "png", enc, landmarks
	return row, nil
}

func trimExt(name string) string {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '.' {
			return name[:i]
		}
		if name[i] == '/' {
			break
		}
	}
	return name
}
