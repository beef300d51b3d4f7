package synthfaces

import "slices"

// HumanClasses are the class words of human identities, in the default
// round-robin order of a world.
var HumanClasses = []string{"man", "woman", "boy", "girl", "person"}

// PetClasses are the class words of the animal-face extension ("synthpets").
var PetClasses = []string{"cat", "dog"}

// Scenes are the names of the procedural backgrounds, in the order they are
// drawn from.
var Scenes = []string{"park", "beach", "office", "kitchen", "street", "forest", "stage", "library"}

// IdentityKeys are the attribute keys fixed per identity, human keys first,
// then pet keys. A sample carries only the keys of its class (see ClassKeys).
var IdentityKeys = []string{
	"skin", "hair_color", "hair_style", "eye_color", "face_shape", "brows", "nose", "mouth", "beard",
	"fur_color", "pattern", "ears", "snout",
}

// ImageKeys are the attribute keys that vary from image to image of one
// identity. A sample carries only the keys of its class (see ClassKeys).
var ImageKeys = []string{
	"scene", "pose", "expression", "lighting", "glasses", "hat", "earrings", "shirt", "collar",
}

var (
	humanIdentityKeys = []string{"skin", "hair_color", "hair_style", "eye_color", "face_shape", "brows", "nose", "mouth", "beard"}
	petIdentityKeys   = []string{"fur_color", "pattern", "ears", "snout", "eye_color"}
	humanImageKeys    = []string{"scene", "pose", "expression", "lighting", "glasses", "hat", "earrings", "shirt"}
	petImageKeys      = []string{"scene", "pose", "expression", "lighting", "collar"}
)

// Palettes: every discrete value and, where it has one, its colour. Colours
// are chosen to stay apart at 32 px.
var (
	skinTones = []named{
		{"pale", hex(0xf6dccb)}, {"fair", hex(0xeabf9a)}, {"tan", hex(0xc98e5c)},
		{"brown", hex(0x93603c)}, {"dark", hex(0x5a3826)},
	}
	hairColors = []named{
		{"black", hex(0x1c1714)}, {"brown", hex(0x6b3f1d)}, {"blond", hex(0xf0cf6e)},
		{"red", hex(0xc8461c)}, {"grey", hex(0xa9abb0)}, {"blue", hex(0x2f62d8)}, {"pink", hex(0xf06fb0)},
	}
	humanEyeColors = []named{
		{"brown", hex(0x5a3314)}, {"blue", hex(0x3d7ee8)}, {"green", hex(0x3f9a40)}, {"grey", hex(0x8a96a0)},
	}
	furColors = []named{
		{"black", hex(0x24201e)}, {"white", hex(0xf2efe8)}, {"grey", hex(0x8d8f94)},
		{"orange", hex(0xe08a32)}, {"brown", hex(0x7a4a26)}, {"golden", hex(0xdcb46a)},
	}
	catEyeColors = []named{
		{"yellow", hex(0xe8d040)}, {"green", hex(0x5cc050)}, {"blue", hex(0x58a8f0)}, {"amber", hex(0xe09a28)},
	}
	dogEyeColors = []named{
		{"brown", hex(0x4a2a12)}, {"amber", hex(0xc07a22)}, {"blue", hex(0x6aa8e0)},
	}
	shirtColors = []named{
		{"red", hex(0xd0342c)}, {"blue", hex(0x2c5cc8)}, {"green", hex(0x2e9a4a)}, {"yellow", hex(0xf0c832)},
		{"white", hex(0xf2f2f0)}, {"black", hex(0x262628)}, {"purple", hex(0x7a3ab0)},
	}
	collarColors = []named{
		{"red", hex(0xd82828)}, {"blue", hex(0x2850d8)}, {"green", hex(0x28a040)}, {"yellow", hex(0xf0d020)},
	}
	accessoryColors = []rgb{
		hex(0xc83030), hex(0x3050c0), hex(0x30a050), hex(0xe0b020), hex(0x303030), hex(0xe8e8e8),
		hex(0x8040a0), hex(0xe07020),
	}
)

// named is a discrete attribute value with its colour.
type named struct {
	name string
	col  rgb
}

func names(ns ...[]named) []string {
	var out []string
	for _, n := range ns {
		for _, v := range n {
			if !slices.Contains(out, v.name) {
				out = append(out, v.name)
			}
		}
	}
	return out
}

var values = map[string][]string{
	"skin":       names(skinTones),
	"hair_color": names(hairColors),
	"hair_style": {"bald", "short", "spiky", "curly", "bob", "long", "bun"},
	"eye_color":  names(humanEyeColors, catEyeColors, dogEyeColors),
	"face_shape": {"round", "oval", "long", "square"},
	"brows":      {"thin", "thick", "arched"},
	"nose":       {"small", "wide", "long"},
	"mouth":      {"small", "wide"},
	"beard":      {"none", "stubble", "moustache", "goatee", "full"},
	"fur_color":  names(furColors),
	"pattern":    {"solid", "spotted", "striped", "patched"},
	"ears":       {"pointy", "folded", "floppy", "round"},
	"snout":      {"short", "long", "flat"},
	"scene":      Scenes,
	"pose":       {"frontal", "left", "right"},
	"expression": {"neutral", "smiling", "laughing", "surprised", "sleepy", "happy"},
	"lighting":   {"bright", "soft", "dim"},
	"glasses":    {"none", "glasses", "sunglasses"},
	"hat":        {"none", "cap", "beanie", "sunhat"},
	"earrings":   {"none", "hoops"},
	"shirt":      names(shirtColors),
	"collar":     append([]string{"none"}, names(collarColors)...),
}

// Values returns every value attribute key can take, in a fixed order, as a
// fresh slice; it returns nil for an unknown key.
func Values(key string) []string {
	return slices.Clone(values[key])
}

// ClassKeys returns the identity-level and image-level attribute keys that
// samples of class carry, as fresh slices; both are nil for an unknown class.
func ClassKeys(class string) (identity, image []string) {
	switch {
	case slices.Contains(HumanClasses, class):
		return slices.Clone(humanIdentityKeys), slices.Clone(humanImageKeys)
	case slices.Contains(PetClasses, class):
		return slices.Clone(petIdentityKeys), slices.Clone(petImageKeys)
	}
	return nil, nil
}

func isPet(class string) bool { return class == "cat" || class == "dog" }
