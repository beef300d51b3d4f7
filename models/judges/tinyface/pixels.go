package tinyface

import (
	"fmt"
	"image"
	"math/rand/v2"

	"github.com/gomlx/gomlx/pkg/core/dtypes"

	"github.com/cocoflow/cocoflow/datasets/imageio"
)

// ImageSize is the side of the square images the tiny metric networks read; other sizes are
// center-cropped and resized to it.
const ImageSize = 32

// DType is the float type of the tiny metric networks.
const DType = dtypes.Float32

// pixelsLen is the length of one image's pixel vector: ImageSize·ImageSize·3.
const pixelsLen = ImageSize * ImageSize * 3

// Pixels returns img as ImageSize×ImageSize RGB values in [0, 1], row-major [y][x][c]. Images of
// another size or aspect are center-cropped to a square and resized (Lanczos) first; alpha is
// ignored. It returns an error for an empty image.
func Pixels(img image.Image) ([]float32, error) {
	if img == nil || img.Bounds().Empty() {
		return nil, fmt.Errorf("tinyface: empty image, want %dx%d RGB", ImageSize, ImageSize)
	}
	b := img.Bounds()
	var n *image.NRGBA
	if b.Dx() == ImageSize && b.Dy() == ImageSize {
		n = imageio.ToNRGBA(img)
	} else {
		n = imageio.Square(img, ImageSize)
	}
	out := make([]float32, pixelsLen)
	for y := range ImageSize {
		row := n.Pix[y*n.Stride:]
		for x := range ImageSize {
			for c := range 3 {
				out[(y*ImageSize+x)*3+c] = float32(row[x*4+c]) / 255
			}
		}
	}
	return out, nil
}

// Pixel normalisation before patching: (p - pixelMean) / pixelStd, roughly zero mean and unit
// variance on synthfaces.
const (
	pixelMean = 0.47
	pixelStd  = 0.27
)

// Patchify appends to dst the patch tokens of one image's pixels (from Pixels) for tower t: the
// central t.CropSize() square cut into (CropSize/Patch)² tokens in row-major patch order, each
// the Patch·Patch·3 normalised values of its patch in [dy][dx][c] order. It returns the
// extended slice.
func Patchify(dst, pixels []float32, t TowerConfig) []float32 {
	patch, crop := t.Patch, t.CropSize()
	off := (ImageSize - crop) / 2
	grid := crop / patch
	for py := range grid {
		for px := range grid {
			for dy := range patch {
				for dx := range patch {
					base := ((off+py*patch+dy)*ImageSize + off + px*patch + dx) * 3
					for c := range 3 {
						dst = append(dst, (pixels[base+c]-pixelMean)/pixelStd)
					}
				}
			}
		}
	}
	return dst
}

// Augment describes the light augmentation applied to training images.
type Augment struct {
	Shift      int     `json:"shift"`      // largest translation in pixels, each axis (edges replicated)
	Brightness float64 `json:"brightness"` // largest relative brightness change (0.1: ×[0.9, 1.1])
	Flip       bool    `json:"flip"`       // mirror left-right with probability ½
}

// Apply returns an augmented copy of pixels (from Pixels) drawn with r; pixels is not modified.
func (a Augment) Apply(r *rand.Rand, pixels []float32) []float32 {
	dx, dy := 0, 0
	if a.Shift > 0 {
		dx, dy = r.IntN(2*a.Shift+1)-a.Shift, r.IntN(2*a.Shift+1)-a.Shift
	}
	gain := float32(1)
	if a.Brightness > 0 {
		gain = float32(1 + a.Brightness*(2*r.Float64()-1))
	}
	flip := a.Flip && r.IntN(2) == 1
	out := make([]float32, pixelsLen)
	for y := range ImageSize {
		sy := min(max(y-dy, 0), ImageSize-1)
		for x := range ImageSize {
			sx := x - dx
			if flip {
				sx = ImageSize - 1 - sx
			}
			sx = min(max(sx, 0), ImageSize-1)
			for c := range 3 {
				out[(y*ImageSize+x)*3+c] = min(pixels[(sy*ImageSize+sx)*3+c]*gain, 1)
			}
		}
	}
	return out
}
