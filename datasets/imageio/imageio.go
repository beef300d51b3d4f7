// Package imageio decodes and encodes the images that travel between stages (PNG or JPEG bytes
// in a binary column) and fits them to a model's input size.
package imageio

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"image/png"
	"io/fs"
	"os"

	"github.com/disintegration/imaging"
)

var (
	jpegMagic = []byte{0xff, 0xd8}
	pngMagic  = []byte("\x89PNG\r\n\x1a\n")
)

// Sniff returns "jpeg" or "png" from the first bytes of an encoded image, or an error saying
// what was found instead.
func Sniff(data []byte) (string, error) {
	switch {
	case len(data) == 0:
		return "", fmt.Errorf("empty file, want a JPEG or PNG image")
	case bytes.HasPrefix(data, jpegMagic):
		return "jpeg", nil
	case bytes.HasPrefix(data, pngMagic):
		return "png", nil
	}
	n := min(len(data), 8)
	return "", fmt.Errorf("not a JPEG or PNG image (starts with % x)", data[:n])
}

// Decode decodes JPEG or PNG bytes, whichever they are.
func Decode(data []byte) (image.Image, error) {
	format, err := Sniff(data)
	if err != nil {
		return nil, err
	}
	return DecodeAs(data, format)
}

// DecodeAs decodes data in the given format ("jpeg" or "png").
func DecodeAs(data []byte, format string) (image.Image, error) {
	var img image.Image
	var err error
	switch format {
	case "jpeg":
		img, err = jpeg.Decode(bytes.NewReader(data))
	case "png":
		img, err = png.Decode(bytes.NewReader(data))
	default:
		return nil, fmt.Errorf("unsupported image format %q", format)
	}
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", format, err)
	}
	return img, nil
}

// ReadFile reads the encoded image at path and returns its bytes and format ("jpeg" or "png",
// from the content). A missing file is an error wrapping fs.ErrNotExist that reads "<path>:
// <missing>", where missing says who expected the file ("listed in X but missing on disk"); a
// file that cannot be read, or is neither JPEG nor PNG, is an error naming path.
func ReadFile(path, missing string) ([]byte, string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("%s: %s: %w", path, missing, fs.ErrNotExist)
	}
	if err != nil {
		return nil, "", err // *fs.PathError names the path
	}
	format, err := Sniff(data)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	return data, format, nil
}

// DecodeFile reads and decodes the image at path (see ReadFile); a file that does not decode
// is an error naming path, e.g. "ROOT/x.jpg: decode jpeg: unexpected EOF".
func DecodeFile(path, missing string) (image.Image, error) {
	data, format, err := ReadFile(path, missing)
	if err != nil {
		return nil, err
	}
	img, err := DecodeAs(data, format)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// PNG encodes img losslessly. Encoding the same pixels always gives the same bytes.
func PNG(img image.Image) ([]byte, error) {
	var b bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&b, img); err != nil {
		return nil, fmt.Errorf("encode png: %w", err)
	}
	return b.Bytes(), nil
}

// Square center-crops img to a square and resizes it to size x size (Lanczos), as models with
// square inputs expect. size <= 0 keeps the crop's size.
func Square(img image.Image, size int) *image.NRGBA {
	b := img.Bounds()
	side := min(b.Dx(), b.Dy())
	out := imaging.CropCenter(img, side, side)
	if size > 0 && size != side {
		out = imaging.Resize(out, size, size, imaging.Lanczos)
	}
	return out
}

// SquareMask does to a mask what Square does to its image (nearest-neighbour, stays binary).
func SquareMask(m *image.Gray, size int) *image.Gray {
	sq := Square(m, 0)
	if size > 0 && size != sq.Bounds().Dx() {
		sq = imaging.Resize(sq, size, size, imaging.NearestNeighbor)
	}
	return ToGray(sq)
}

// ToGray converts img to 8-bit gray.
func ToGray(img image.Image) *image.Gray {
	if g, ok := img.(*image.Gray); ok {
		return g
	}
	b := img.Bounds()
	g := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(g, g.Bounds(), img, b.Min, draw.Src)
	return g
}

// ToNRGBA converts img to non-premultiplied RGBA with origin (0, 0).
func ToNRGBA(img image.Image) *image.NRGBA {
	if n, ok := img.(*image.NRGBA); ok && n.Rect.Min == (image.Point{}) {
		return n
	}
	b := img.Bounds()
	n := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(n, n.Bounds(), img, b.Min, draw.Src)
	return n
}

// DecodeMask decodes a PNG mask; any non-zero pixel is subject.
func DecodeMask(data []byte) (*image.Gray, error) {
	img, err := Decode(data)
	if err != nil {
		return nil, err
	}
	g := ToGray(img)
	for i, v := range g.Pix {
		if v != 0 {
			g.Pix[i] = 255
		}
	}
	return g, nil
}

// Coverage returns the fraction of subject pixels in a mask.
func Coverage(m *image.Gray) float64 {
	n := 0
	for _, v := range m.Pix {
		if v != 0 {
			n++
		}
	}
	if len(m.Pix) == 0 {
		return 0
	}
	return float64(n) / float64(len(m.Pix))
}

// White is the subject value of masks.
var White = color.Gray{Y: 255}
