package insightface

import (
	"fmt"

	"github.com/cocoflow/cocoflow/models/judges/facedet"
)

// ArcFaceTemplate is where insightface's norm_crop puts the five landmarks (left eye, right
// eye, nose tip, left and right mouth corner) in a 112×112 crop (face_align.arcface_dst).
var ArcFaceTemplate = [5][2]float64{
	{38.2946, 51.6963},
	{73.5318, 51.5014},
	{56.0252, 71.7366},
	{41.5493, 92.3655},
	{70.7299, 92.2041},
}

// Template returns ArcFaceTemplate for a size×size crop as estimate_norm scales it: by
// size/112 when size is a multiple of 112, else by size/128 and shifted right by 8·size/128.
func Template(size int) ([5][2]float64, error) {
	var ratio, dx float64
	switch {
	case size > 0 && size%112 == 0:
		ratio = float64(size) / 112
	case size > 0 && size%128 == 0:
		ratio = float64(size) / 128
		dx = 8 * ratio
	default:
		return [5][2]float64{}, fmt.Errorf("arcface crop size %d: want a multiple of 112 or 128", size)
	}
	var t [5][2]float64
	for i, p := range ArcFaceTemplate {
		t[i] = [2]float64{p[0]*ratio + dx, p[1] * ratio}
	}
	return t, nil
}

// Similarity returns the least-squares similarity transform (rotation, uniform scale,
// translation; no reflection) mapping src onto dst, as skimage's SimilarityTransform.estimate
// (Umeyama 1991) that estimate_norm uses. In 2-D the optimum has a closed form: with both
// point sets centred, the linear part is [[a, −b], [b, a]] with a = Σ(x·u + y·v)/Σ|p|² and
// b = Σ(x·v − y·u)/Σ|p|². Fewer than two distinct source points give a NaN transform.
func Similarity(src, dst [][2]float64) facedet.Affine {
	n := float64(len(src))
	var mx, my, nx, ny float64
	for i := range src {
		mx += src[i][0] / n
		my += src[i][1] / n
		nx += dst[i][0] / n
		ny += dst[i][1] / n
	}
	var ss, sa, sb float64
	for i := range src {
		x, y := src[i][0]-mx, src[i][1]-my
		u, v := dst[i][0]-nx, dst[i][1]-ny
		ss += x*x + y*y
		sa += x*u + y*v
		sb += x*v - y*u
	}
	a, b := sa/ss, sb/ss
	return facedet.Affine{a, -b, nx - (a*mx - b*my), b, a, ny - (b*mx + a*my)}
}

// NormCrop aligns the face with five landmarks onto the ArcFace template of a size×size crop
// (insightface's face_align.norm_crop: estimate_norm, then cv2.warpAffine with a black border;
// the crop is rounded to 8-bit values, as cv2 warps insightface's uint8 image).
func NormCrop(img *facedet.RGB, landmarks [][2]float32, size int) (*facedet.RGB, error) {
	if len(landmarks) != 5 {
		return nil, fmt.Errorf("norm crop: want 5 landmarks, got %d", len(landmarks))
	}
	tmpl, err := Template(size)
	if err != nil {
		return nil, err
	}
	src := make([][2]float64, 5)
	for i, p := range landmarks {
		src[i] = [2]float64{float64(p[0]), float64(p[1])}
	}
	return img.Warp(Similarity(src, tmpl[:]), size, size).Quantize(), nil
}

// BoxCrop is the alignment of a detector without landmarks (UltraFace): the square of side
// max(box width, box height) centred on the box, resized bilinearly to size×size (8-bit
// values), black where it leaves the image. The face is upright and centred but not aligned on the eyes, so its
// embedding differs from a norm_crop one of the same face: compare only like with like.
func BoxCrop(img *facedet.RGB, box [4]float32, size int) *facedet.RGB {
	cx, cy := float64(box[0]+box[2])/2, float64(box[1]+box[3])/2
	side := max(float64(box[2]-box[0]), float64(box[3]-box[1]), 1)
	s := float64(size) / side
	c := float64(size-1) / 2
	return img.Warp(facedet.Affine{s, 0, c - s*cx, 0, s, c - s*cy}, size, size).Quantize()
}
