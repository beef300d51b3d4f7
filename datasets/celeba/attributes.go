package celeba

import "fmt"

// NumAttributes is the number of binary attributes CelebA annotates per image.
const NumAttributes = 40

// attrNames is the canonical attribute order of list_attr_celeba.txt. The
// parser reads this unexported copy so that a caller writing to the exported
// AttributeNames cannot change how files are read.
var attrNames = [NumAttributes]string{
	"5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald",
	"Bangs", "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair",
	"Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
	"Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones",
	"Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard",
	"Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
	"Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings",
	"Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
}

// AttributeNames lists the 40 CelebA attributes in the canonical order of the
// header line of list_attr_celeba.txt (5_o_Clock_Shadow ... Young). Bit i of
// an Attributes value refers to AttributeNames[i].
var AttributeNames = attrNames

var attrIndex = func() map[string]int {
	m := make(map[string]int, NumAttributes)
	for i, n := range attrNames {
		m[n] = i
	}
	return m
}()

// AttributeIndex returns the position of the named attribute in
// AttributeNames. It returns an error naming the attribute when the name is not
// one of the 40 CelebA attributes (names are case-sensitive, as in the file).
func AttributeIndex(name string) (int, error) {
	i, ok := attrIndex[name]
	if !ok {
		return -1, fmt.Errorf("celeba: unknown attribute %q (want one of the 40 names of list_attr_celeba.txt, e.g. Smiling, Male, Eyeglasses)", name)
	}
	return i, nil
}

// Attributes holds the 40 binary CelebA attributes of one image as a bit set:
// bit i is set when AttributeNames[i] is 1 in list_attr_celeba.txt and clear
// when it is -1. It is 8 bytes per image instead of a 40-entry map, which
// matters for the 202,599 images of the full dataset.
type Attributes uint64

// Get reports whether attribute i (an index into AttributeNames) is set. It
// returns false for an index outside [0, NumAttributes).
func (a Attributes) Get(i int) bool {
	if i < 0 || i >= NumAttributes {
		return false
	}
	return a&(1<<uint(i)) != 0
}

// Has reports whether the named attribute is set. It returns false for a name
// that is not a CelebA attribute; use AttributeIndex to validate names that
// come from user input.
func (a Attributes) Has(name string) bool {
	i, ok := attrIndex[name]
	return ok && a.Get(i)
}

// With returns a copy of a with the named attribute set to v. It returns an
// error for a name that is not a CelebA attribute.
func (a Attributes) With(name string, v bool) (Attributes, error) {
	i, err := AttributeIndex(name)
	if err != nil {
		return a, err
	}
	if v {
		return a | 1<<uint(i), nil
	}
	return a &^ (1 << uint(i)), nil
}

// Names returns the names of the set attributes in canonical order; it
// returns an empty slice when none is set.
func (a Attributes) Names() []string {
	out := []string{}
	for i, n := range attrNames {
		if a.Get(i) {
			out = append(out, n)
		}
	}
	return out
}

// Map returns all 40 attributes as name -> value. It never fails.
func (a Attributes) Map() map[string]bool {
	m := make(map[string]bool, NumAttributes)
	for i, n := range attrNames {
		m[n] = a.Get(i)
	}
	return m
}

// NumLandmarks is the number of facial landmarks per aligned image.
const NumLandmarks = 5

// LandmarkNames gives the order of Record.Landmarks: the five points of
// list_landmarks_align_celeba.txt. "left" and "right" are as seen in the image
// (lefteye is the eye with the smaller x), the same order as the ArcFace
// 5-point alignment template.
var LandmarkNames = [NumLandmarks]string{"left_eye", "right_eye", "nose", "left_mouth", "right_mouth"}

// landmarkHeader and bboxHeader are the second lines of the landmark and
// bounding-box files, checked field by field.
var landmarkHeader = []string{
	"lefteye_x", "lefteye_y", "righteye_x", "righteye_y", "nose_x", "nose_y",
	"leftmouth_x", "leftmouth_y", "rightmouth_x", "rightmouth_y",
}

var bboxHeader = []string{"image_id", "x_1", "y_1", "width", "height"}
