package captioner

import (
	"github.com/cocoflow/cocoflow/datasets/phrases"
)

// phrase is one way to say something about the subject: words before the class word
// ("smiling", "bald"), words after it ("with red hair", "wearing glasses"), or both empty.
type phrase struct {
	pre  string   // adjective(s) before the class word
	post string   // phrase after the class word
	keys []string // the attribute keys the phrase reveals: its cost against the caption's budget
}

// facet is one aspect of the subject that a caption may mention, read from one or two
// attribute keys.
type facet struct {
	keys   []string // attribute keys the facet reads
	weight float64  // how likely the facet is picked among those that have something to say
	// say returns every phrase the facet can produce for attributes a of a subject of class;
	// nil when it has nothing to say (a key is missing or its value is "none").
	say func(a map[string]string, class string) []phrase
}

func one(key, pre, post string) phrase { return phrase{pre: pre, post: post, keys: []string{key}} }

func two(k1, k2, pre, post string) phrase {
	return phrase{pre: pre, post: post, keys: []string{k1, k2}}
}

// has returns a[key] and whether it is present and says something (not "" or "none").
func has(a map[string]string, key string) (string, bool) {
	v, ok := a[key]
	return v, ok && v != "" && v != "none"
}

// synthfacesFacets are the facets of synthfaces attributes, in the order their phrases are
// written: pre-adjectives of earlier facets come first ("a smiling bald man").
var synthfacesFacets = []facet{
	{keys: []string{"expression"}, weight: 2, say: sayExpression},
	{keys: []string{"hair_color", "hair_style"}, weight: 3, say: sayHair},
	{keys: []string{"fur_color", "pattern"}, weight: 3, say: sayFur},
	{keys: []string{"eye_color"}, weight: 1.5, say: func(a map[string]string, _ string) []phrase {
		v, ok := has(a, "eye_color")
		if !ok {
			return nil
		}
		return []phrase{one("eye_color", "", "with "+v+" eyes")}
	}},
	{keys: []string{"beard"}, weight: 1.5, say: sayBeard},
	{keys: []string{"skin"}, weight: 1, say: func(a map[string]string, _ string) []phrase {
		v, ok := has(a, "skin")
		if !ok {
			return nil
		}
		return []phrase{one("skin", "", "with "+v+" skin")}
	}},
	{keys: []string{"face_shape"}, weight: 0.7, say: simpleWith("face_shape", "face")},
	{keys: []string{"brows"}, weight: 0.7, say: pluralWith("brows", "eyebrows")},
	{keys: []string{"nose"}, weight: 0.7, say: simpleWith("nose", "nose")},
	{keys: []string{"mouth"}, weight: 0.7, say: simpleWith("mouth", "mouth")},
	{keys: []string{"ears"}, weight: 1.2, say: pluralWith("ears", "ears")},
	{keys: []string{"snout"}, weight: 1, say: simpleWith("snout", "snout")},
	{keys: []string{"glasses"}, weight: 1.5, say: func(a map[string]string, _ string) []phrase {
		v, ok := has(a, "glasses")
		if !ok {
			return nil
		}
		return []phrase{one("glasses", "", "wearing "+v)}
	}},
	{keys: []string{"hat"}, weight: 1.5, say: func(a map[string]string, _ string) []phrase {
		v, ok := has(a, "hat")
		if !ok {
			return nil
		}
		if v == "sunhat" {
			v = "sun hat"
		}
		return []phrase{one("hat", "", "wearing "+phrases.WithArticle(v))}
	}},
	{keys: []string{"earrings"}, weight: 0.8, say: func(a map[string]string, _ string) []phrase {
		v, ok := has(a, "earrings")
		if !ok {
			return nil
		}
		if v == "hoops" {
			return []phrase{one("earrings", "", "wearing hoop earrings")}
		}
		return []phrase{one("earrings", "", "wearing "+v+" earrings")}
	}},
	{keys: []string{"shirt"}, weight: 1, say: func(a map[string]string, _ string) []phrase {
		v, ok := has(a, "shirt")
		if !ok {
			return nil
		}
		return []phrase{one("shirt", "", "in "+phrases.WithArticle(v+" shirt")), one("shirt", "", "wearing "+phrases.WithArticle(v+" shirt"))}
	}},
	{keys: []string{"collar"}, weight: 1.2, say: func(a map[string]string, _ string) []phrase {
		v, ok := has(a, "collar")
		if !ok {
			return nil
		}
		return []phrase{one("collar", "", "wearing "+phrases.WithArticle(v+" collar")), one("collar", "", "with "+phrases.WithArticle(v+" collar"))}
	}},
	{keys: []string{"pose"}, weight: 0.8, say: func(a map[string]string, _ string) []phrase {
		v, ok := has(a, "pose")
		if !ok {
			return nil
		}
		switch v {
		case "frontal":
			return []phrase{one("pose", "", "looking at the camera"), one("pose", "", "facing the camera")}
		case "left", "right":
			return []phrase{one("pose", "", "facing "+v), one("pose", "", "turned to the "+v)}
		}
		return []phrase{one("pose", "", "facing "+v)}
	}},
	{keys: []string{"lighting"}, weight: 0.6, say: func(a map[string]string, _ string) []phrase {
		v, ok := has(a, "lighting")
		if !ok {
			return nil
		}
		return []phrase{one("lighting", "", "in "+v+" light")}
	}},
}

// sayExpression renders a facial expression as an adjective or a phrase after the class word.
func sayExpression(a map[string]string, _ string) []phrase {
	v, ok := has(a, "expression")
	if !ok {
		return nil
	}
	switch v {
	case "neutral":
		return []phrase{one("expression", "", "with a neutral expression")}
	case "smiling", "laughing":
		return []phrase{one("expression", v, ""), one("expression", "", v)}
	case "surprised", "sleepy", "happy":
		return []phrase{one("expression", v, ""), one("expression", "", "looking "+v)}
	}
	return []phrase{one("expression", v, "")}
}

// sayHair renders hair colour and style alone or together ("with curly red hair").
func sayHair(a map[string]string, _ string) []phrase {
	color, hasColor := has(a, "hair_color")
	style, hasStyle := has(a, "hair_style")
	var out []phrase
	if hasColor && style != "bald" {
		out = append(out, one("hair_color", "", "with "+color+" hair"))
	}
	if hasStyle {
		switch style {
		case "bald":
			out = append(out, one("hair_style", "bald", ""))
		case "bob":
			out = append(out, one("hair_style", "", "with a bob"))
		case "bun":
			out = append(out, one("hair_style", "", "with hair in a bun"))
		default:
			out = append(out, one("hair_style", "", "with "+style+" hair"))
		}
	}
	if hasColor && hasStyle {
		switch style {
		case "bald":
		case "bob":
			out = append(out, two("hair_color", "hair_style", "", "with "+phrases.WithArticle(color+" bob")))
		case "bun":
			out = append(out, two("hair_color", "hair_style", "", "with "+color+" hair in a bun"))
		default:
			out = append(out, two("hair_color", "hair_style", "", "with "+style+" "+color+" hair"))
		}
	}
	return out
}

// sayFur renders fur colour and pattern alone or together ("with spotted white fur").
func sayFur(a map[string]string, _ string) []phrase {
	color, hasColor := has(a, "fur_color")
	pattern, hasPattern := has(a, "pattern")
	if pattern == "solid" {
		hasPattern = false // plain fur is the unremarkable case
	}
	var out []phrase
	if hasColor {
		out = append(out, one("fur_color", color, ""), one("fur_color", "", "with "+color+" fur"))
	}
	if hasPattern {
		out = append(out, one("pattern", pattern, ""), one("pattern", "", "with "+pattern+" fur"))
	}
	if hasColor && hasPattern {
		out = append(out, two("fur_color", "pattern", "", "with "+pattern+" "+color+" fur"))
	}
	return out
}

// sayBeard renders facial hair; a clean-shaven man is worth saying, a clean-shaven girl is not.
func sayBeard(a map[string]string, class string) []phrase {
	v, present := a["beard"]
	switch {
	case !present || v == "":
		return nil
	case v == "none":
		if class == "man" {
			return []phrase{one("beard", "clean-shaven", "")}
		}
		return nil
	case v == "stubble":
		return []phrase{one("beard", "", "with stubble")}
	case v == "full":
		return []phrase{one("beard", "", "with a full beard"), one("beard", "bearded", "")}
	}
	return []phrase{one("beard", "", "with "+phrases.WithArticle(v))}
}

// simpleWith returns a facet renderer for "with a <value> <noun>".
func simpleWith(key, noun string) func(map[string]string, string) []phrase {
	return func(a map[string]string, _ string) []phrase {
		v, ok := has(a, key)
		if !ok {
			return nil
		}
		return []phrase{one(key, "", "with "+phrases.WithArticle(v+" "+noun))}
	}
}

// pluralWith returns a facet renderer for "with <value> <nouns>".
func pluralWith(key, nouns string) func(map[string]string, string) []phrase {
	return func(a map[string]string, _ string) []phrase {
		v, ok := has(a, key)
		if !ok {
			return nil
		}
		return []phrase{one(key, "", "with "+v+" "+nouns)}
	}
}

// celebaTrue is the value of a set CelebA attribute; "-1" is the other allowed value.
const celebaTrue = "1"

// celebaSet reports whether CelebA attribute name is "1" in a.
func celebaSet(a map[string]string, name string) bool { return a[name] == celebaTrue }

// celebaSimple returns a facet that says post when attribute name is set.
func celebaSimple(name string, weight float64, pre string, posts ...string) facet {
	return facet{keys: []string{name}, weight: weight, say: func(a map[string]string, _ string) []phrase {
		if !celebaSet(a, name) {
			return nil
		}
		var out []phrase
		if pre != "" {
			out = append(out, one(name, pre, ""))
		}
		for _, p := range posts {
			out = append(out, one(name, "", p))
		}
		return out
	}}
}

// celebaHairColors and celebaHairTextures name the hair attributes of CelebA with their words.
var (
	celebaHairColors   = [][2]string{{"Black_Hair", "black"}, {"Blond_Hair", "blond"}, {"Brown_Hair", "brown"}, {"Gray_Hair", "gray"}}
	celebaHairTextures = [][2]string{{"Wavy_Hair", "wavy"}, {"Straight_Hair", "straight"}}
)

// celebaFacets are the facets of the 40 CelebA attributes. Male and Young are the caller's
// class word; Attractive and Blurry say nothing about the subject that a caption should carry.
var celebaFacets = []facet{
	celebaSimple("Smiling", 2, "smiling"),
	celebaSimple("Chubby", 0.5, "chubby"),
	{weight: 3, say: celebaHair},
	celebaSimple("Bald", 1.5, "bald"),
	celebaSimple("Bangs", 1, "", "with bangs"),
	celebaSimple("Receding_Hairline", 0.7, "", "with a receding hairline"),
	celebaSimple("Eyeglasses", 2, "", "wearing glasses", "wearing eyeglasses"),
	celebaSimple("Wearing_Hat", 1.5, "", "wearing a hat"),
	{keys: []string{"No_Beard"}, weight: 1, say: func(a map[string]string, class string) []phrase {
		if a["No_Beard"] != "-1" || class == "woman" || class == "girl" {
			return nil
		}
		return []phrase{one("No_Beard", "", "with a beard"), one("No_Beard", "bearded", "")}
	}},
	celebaSimple("Mustache", 1, "", "with a mustache"),
	celebaSimple("Goatee", 1, "", "with a goatee"),
	celebaSimple("Sideburns", 0.7, "", "with sideburns"),
	celebaSimple("5_o_Clock_Shadow", 0.8, "", "with stubble", "with a five o'clock shadow"),
	celebaSimple("Heavy_Makeup", 1, "", "wearing heavy makeup"),
	celebaSimple("Wearing_Lipstick", 1, "", "wearing lipstick"),
	celebaSimple("Wearing_Earrings", 0.8, "", "wearing earrings"),
	celebaSimple("Wearing_Necklace", 0.8, "", "wearing a necklace"),
	celebaSimple("Wearing_Necktie", 0.8, "", "wearing a tie", "wearing a necktie"),
	celebaSimple("Pale_Skin", 0.8, "", "with pale skin"),
	celebaSimple("Arched_Eyebrows", 0.6, "", "with arched eyebrows"),
	celebaSimple("Bushy_Eyebrows", 0.6, "", "with bushy eyebrows"),
	celebaSimple("Narrow_Eyes", 0.5, "", "with narrow eyes"),
	celebaSimple("Bags_Under_Eyes", 0.5, "", "with bags under the eyes"),
	celebaSimple("Big_Nose", 0.5, "", "with a big nose"),
	celebaSimple("Pointy_Nose", 0.5, "", "with a pointy nose"),
	celebaSimple("Big_Lips", 0.5, "", "with big lips"),
	celebaSimple("Mouth_Slightly_Open", 0.5, "", "with a slightly open mouth"),
	celebaSimple("High_Cheekbones", 0.5, "", "with high cheekbones"),
	celebaSimple("Rosy_Cheeks", 0.5, "", "with rosy cheeks"),
	celebaSimple("Oval_Face", 0.5, "", "with an oval face"),
	celebaSimple("Double_Chin", 0.5, "", "with a double chin"),
}

// celebaNames is every CelebA attribute name the template captioner accepts: those its facets
// read and those it deliberately ignores.
var celebaNames = func() map[string]bool {
	m := map[string]bool{"Male": true, "Young": true, "Attractive": true, "Blurry": true}
	for _, c := range celebaHairColors {
		m[c[0]] = true
	}
	for _, t := range celebaHairTextures {
		m[t[0]] = true
	}
	for _, f := range celebaFacets {
		for _, k := range f.keys {
			m[k] = true
		}
	}
	return m
}()

// celebaHair renders the first set CelebA hair colour and texture, alone or together ("with
// wavy blond hair"); a bald subject has neither.
func celebaHair(a map[string]string, _ string) []phrase {
	if celebaSet(a, "Bald") {
		return nil
	}
	var color, colorKey, texture, textureKey string
	for _, c := range celebaHairColors {
		if celebaSet(a, c[0]) {
			colorKey, color = c[0], c[1]
			break
		}
	}
	for _, t := range celebaHairTextures {
		if celebaSet(a, t[0]) {
			textureKey, texture = t[0], t[1]
			break
		}
	}
	var out []phrase
	if color != "" {
		out = append(out, one(colorKey, "", "with "+color+" hair"))
	}
	if texture != "" {
		out = append(out, one(textureKey, "", "with "+texture+" hair"))
	}
	if color != "" && texture != "" {
		out = append(out, two(colorKey, textureKey, "", "with "+texture+" "+color+" hair"))
	}
	return out
}
