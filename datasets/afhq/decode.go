package afhq

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
)

var (
	jpegMagic = []byte{0xff, 0xd8}
	pngMagic  = []byte("\x89PNG\r\n\x1a\n")
)

// sniff returns "jpeg" or "png" from the first bytes of an encoded image, or
// an error saying what was found instead.
func sniff(data []byte) (string, error) {
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

// decode decodes data in the given format ("jpeg" or "png").
func decode(data []byte, format string) (image.Image, error) {
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
