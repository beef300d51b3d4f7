package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// A stage kind declares its parameters once, as a Go struct whose fields carry tags:
//
//	type captionParams struct {
//	    Backend string `param:"backend" default:"template" enum:"template,openai" doc:"caption source"`
//	    PerImage int   `param:"per_image" default:"2" min:"2" doc:"captions written per image"`
//	}
//
// Tags: param (the YAML key), doc, default, enum (comma-separated), min, max, required ("true"),
// fingerprint ("-" leaves the field out of the stage fingerprint: concurrency, timeouts, ...).
// Validation, defaults, `cocoflow stages` and `cocoflow validate` all read this declaration.

// Param describes one parameter of a stage kind.
type Param struct {
	Name        string   // YAML key
	Type        string   // int, float, string, bool, duration, strings, ints, floats, map
	Default     string   // as written in the tag; "" for none
	Doc         string   // one line
	Enum        []string // allowed values for strings (and each element of a list)
	Min, Max    *float64 // bounds for numbers (and list lengths for lists)
	Required    bool
	Fingerprint bool // whether the value is part of the stage fingerprint
	field       int
}

// ParamSpec is the parameter declaration of a stage kind, derived from a struct type.
type ParamSpec struct {
	typ    reflect.Type
	Params []Param
}

// ParamsOf derives the parameter spec of P, which must be a struct whose exported fields carry
// `param` tags. It panics on a malformed declaration: that is a programming error in a stage kind,
// caught by the registry tests, never by user input.
func ParamsOf[P any]() ParamSpec {
	t := reflect.TypeFor[P]()
	if t.Kind() != reflect.Struct {
		panic(fmt.Sprintf("pipeline.ParamsOf: %s is not a struct", t))
	}
	spec := ParamSpec{typ: t}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := f.Tag.Get("param")
		if name == "" {
			continue
		}
		p := Param{
			Name:        name,
			Type:        typeName(f.Type),
			Default:     f.Tag.Get("default"),
			Doc:         f.Tag.Get("doc"),
			Required:    f.Tag.Get("required") == "true",
			Fingerprint: f.Tag.Get("fingerprint") != "-",
			field:       i,
		}
		if p.Type == "" {
			panic(fmt.Sprintf("pipeline.ParamsOf: %s.%s has unsupported type %s", t, f.Name, f.Type))
		}
		if e := f.Tag.Get("enum"); e != "" {
			p.Enum = strings.Split(e, ",")
		}
		for tag, dst := range map[string]**float64{"min": &p.Min, "max": &p.Max} {
			if s := f.Tag.Get(tag); s != "" {
				v, err := strconv.ParseFloat(s, 64)
				if err != nil {
					panic(fmt.Sprintf("pipeline.ParamsOf: %s.%s: bad %s tag %q", t, f.Name, tag, s))
				}
				*dst = &v
			}
		}
		if p.Default != "" {
			if err := setFromString(reflect.New(f.Type).Elem(), p, p.Default); err != nil {
				panic(fmt.Sprintf("pipeline.ParamsOf: %s.%s: default: %v", t, f.Name, err))
			}
		}
		spec.Params = append(spec.Params, p)
	}
	return spec
}

func typeName(t reflect.Type) string {
	if t == reflect.TypeFor[time.Duration]() {
		return "duration"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint64, reflect.Uint32:
		return "int"
	case reflect.Float64, reflect.Float32:
		return "float"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Slice:
		switch typeName(t.Elem()) {
		case "string":
			return "strings"
		case "int":
			return "ints"
		case "float":
			return "floats"
		}
	case reflect.Map:
		if t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.String {
			return "map"
		}
	}
	return ""
}

// Lookup returns the parameter named name.
func (s ParamSpec) Lookup(name string) (Param, bool) {
	for _, p := range s.Params {
		if p.Name == name {
			return p, true
		}
	}
	return Param{}, false
}

// Names lists the parameter names in declaration order.
func (s ParamSpec) Names() []string {
	names := make([]string, len(s.Params))
	for i, p := range s.Params {
		names[i] = p.Name
	}
	return names
}

// Defaults returns a new *P-typed value (as any) holding every default.
func (s ParamSpec) Defaults() any {
	v := reflect.New(s.typ)
	for _, p := range s.Params {
		if p.Default != "" {
			_ = setFromString(v.Elem().Field(p.field), p, p.Default)
		}
	}
	return v.Interface()
}

// Decode validates a `with:` mapping against the spec and returns a pointer to a new params
// struct with defaults filled in. Errors name the file, line and parameter (pos gives the file).
func (s ParamSpec) Decode(node *yaml.Node, pos Pos) (any, error) {
	v := reflect.ValueOf(s.Defaults())
	seen := map[string]bool{}
	if node != nil && node.Kind != 0 {
		if node.Kind != yaml.MappingNode {
			return nil, pos.At(node).Errorf("parameters must be a mapping of name: value, got %s", nodeKind(node))
		}
		for i := 0; i+1 < len(node.Content); i += 2 {
			key, val := node.Content[i], node.Content[i+1]
			p, ok := s.Lookup(key.Value)
			if !ok {
				return nil, pos.At(key).Errorf("unknown parameter %q (known: %s)", key.Value, strings.Join(s.Names(), ", "))
			}
			if seen[p.Name] {
				return nil, pos.At(key).Errorf("parameter %q given twice", p.Name)
			}
			seen[p.Name] = true
			if err := setFromNode(v.Elem().Field(p.field), p, val); err != nil {
				return nil, pos.At(val).Errorf("parameter %q: %v", p.Name, err)
			}
		}
	}
	for _, p := range s.Params {
		if p.Required && !seen[p.Name] {
			return nil, pos.At(node).Errorf("missing required parameter %q (%s)", p.Name, p.Doc)
		}
	}
	return v.Interface(), nil
}

// Resolved returns the parameter values of params (a *P made by Decode) as an ordered list of
// name/value pairs, for manifests and fingerprints. With fingerprintOnly, fields tagged
// fingerprint:"-" are left out.
func (s ParamSpec) Resolved(params any, fingerprintOnly bool) []NamedValue {
	v := reflect.ValueOf(params).Elem()
	var out []NamedValue
	for _, p := range s.Params {
		if fingerprintOnly && !p.Fingerprint {
			continue
		}
		val := v.Field(p.field).Interface()
		if d, ok := val.(time.Duration); ok {
			val = d.String()
		}
		out = append(out, NamedValue{p.Name, val})
	}
	return out
}

// NamedValue is one resolved parameter.
type NamedValue struct {
	Name  string
	Value any
}

// Values is an ordered list of resolved parameters that marshals to a JSON object in order.
type Values []NamedValue

// MarshalJSON writes the values as a JSON object, keys in declaration order.
func (vs Values) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, nv := range vs {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(nv.Name)
		val, err := json.Marshal(nv.Value)
		if err != nil {
			return nil, fmt.Errorf("parameter %s: %w", nv.Name, err)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(val)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!int":
			return "integer " + n.Value
		case "!!float":
			return "number " + n.Value
		case "!!bool":
			return "boolean " + n.Value
		case "!!null":
			return "null"
		}
		return strconv.Quote(n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

func setFromNode(f reflect.Value, p Param, n *yaml.Node) error {
	switch p.Type {
	case "strings", "ints", "floats":
		if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
			// A single scalar is a one-element list: `classes: man` reads as [man].
			return setList(f, p, []*yaml.Node{n})
		}
		if n.Kind != yaml.SequenceNode {
			return fmt.Errorf("want a list, got %s", nodeKind(n))
		}
		return setList(f, p, n.Content)
	case "map":
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("want a mapping, got %s", nodeKind(n))
		}
		m := reflect.MakeMap(f.Type())
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i+1].Kind != yaml.ScalarNode {
				return fmt.Errorf("key %q: want a plain value, got %s", n.Content[i].Value, nodeKind(n.Content[i+1]))
			}
			v, err := expandEnv(n.Content[i+1].Value)
			if err != nil {
				return fmt.Errorf("key %q: %v", n.Content[i].Value, err)
			}
			m.SetMapIndex(reflect.ValueOf(n.Content[i].Value), reflect.ValueOf(v))
		}
		f.Set(m)
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want %s, got %s", article(p.Type), nodeKind(n))
	}
	if err := checkScalarTag(p.Type, n); err != nil {
		return err
	}
	v, err := expandEnv(n.Value)
	if err != nil {
		return err
	}
	return setFromString(f, p, v)
}

// envRef is a ${NAME} reference to an environment variable in a parameter value.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces every ${NAME} in a YAML parameter value (a scalar, an item of a list, a
// value of a mapping) with the environment variable NAME, so that a config names model folders
// under one root (${COCOFLOW_MODELS}/buffalo_l). An unset variable is an error; a plain $ and
// $NAME are kept as they are.
func expandEnv(s string) (string, error) {
	var missing string
	out := envRef.ReplaceAllStringFunc(s, func(ref string) string {
		name := envRef.FindStringSubmatch(ref)[1]
		v, ok := os.LookupEnv(name)
		if !ok && missing == "" {
			missing = name
		}
		return v
	})
	if missing != "" {
		return "", fmt.Errorf("%q uses ${%s}, which is not set in the environment", s, missing)
	}
	return out, nil
}

func checkScalarTag(typ string, n *yaml.Node) error {
	ok := true
	switch typ {
	case "int":
		ok = n.Tag == "!!int"
	case "float":
		ok = n.Tag == "!!int" || n.Tag == "!!float"
	case "bool":
		ok = n.Tag == "!!bool"
	case "string", "duration":
		ok = n.Tag == "!!str" || n.Tag == "!!int" || n.Tag == "!!float"
	}
	if !ok {
		return fmt.Errorf("want %s, got %s", article(typ), nodeKind(n))
	}
	return nil
}

func article(typ string) string {
	switch typ {
	case "int":
		return "an integer"
	case "float":
		return "a number"
	case "bool":
		return "true or false"
	case "duration":
		return "a duration like 30s or 2m"
	case "string":
		return "a string"
	}
	return "a " + typ
}

func setList(f reflect.Value, p Param, items []*yaml.Node) error {
	elem := Param{Name: p.Name, Type: strings.TrimSuffix(p.Type, "s"), Enum: p.Enum}
	list := reflect.MakeSlice(f.Type(), len(items), len(items))
	for i, it := range items {
		if it.Kind != yaml.ScalarNode {
			return fmt.Errorf("item %d: want %s, got %s", i+1, article(elem.Type), nodeKind(it))
		}
		if err := checkScalarTag(elem.Type, it); err != nil {
			return fmt.Errorf("item %d: %v", i+1, err)
		}
		v, err := expandEnv(it.Value)
		if err != nil {
			return fmt.Errorf("item %d: %v", i+1, err)
		}
		if err := setFromString(list.Index(i), elem, v); err != nil {
			return fmt.Errorf("item %d: %v", i+1, err)
		}
	}
	if err := checkBounds(p, float64(len(items)), "length"); err != nil {
		return err
	}
	f.Set(list)
	return nil
}

// setFromString parses s into f according to p (used for tag defaults and YAML scalars).
func setFromString(f reflect.Value, p Param, s string) error {
	switch p.Type {
	case "strings", "ints", "floats":
		var items []*yaml.Node
		if s != "" {
			for _, part := range strings.Split(s, ",") {
				n := &yaml.Node{Kind: yaml.ScalarNode, Value: strings.TrimSpace(part)}
				n.Tag = n.ShortTag()
				items = append(items, n)
			}
		}
		return setList(f, p, items)
	case "map":
		m := reflect.MakeMap(f.Type())
		for _, kv := range strings.Split(s, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return fmt.Errorf("want key=value pairs, got %q", kv)
			}
			m.SetMapIndex(reflect.ValueOf(k), reflect.ValueOf(v))
		}
		f.Set(m)
		return nil
	case "duration":
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("want a duration like 30s or 2m, got %q", s)
		}
		f.SetInt(int64(d))
		return nil
	case "string":
		if len(p.Enum) > 0 && !contains(p.Enum, s) {
			return fmt.Errorf("want one of %s, got %q", strings.Join(p.Enum, ", "), s)
		}
		f.SetString(s)
		return nil
	case "bool":
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", s)
		}
		f.SetBool(b)
		return nil
	case "int":
		i, err := strconv.ParseInt(s, 0, 64)
		if err != nil {
			return fmt.Errorf("want an integer, got %q", s)
		}
		if err := checkBounds(p, float64(i), "value"); err != nil {
			return err
		}
		if f.Kind() == reflect.Uint64 || f.Kind() == reflect.Uint32 {
			if i < 0 {
				return fmt.Errorf("want a non-negative integer, got %d", i)
			}
			f.SetUint(uint64(i))
		} else {
			f.SetInt(i)
		}
		return nil
	case "float":
		x, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(x) {
			return fmt.Errorf("want a number, got %q", s)
		}
		if err := checkBounds(p, x, "value"); err != nil {
			return err
		}
		f.SetFloat(x)
		return nil
	}
	return fmt.Errorf("unsupported parameter type %s", p.Type)
}

func checkBounds(p Param, x float64, what string) error {
	if p.Min != nil && x < *p.Min {
		return fmt.Errorf("%s %g is below the minimum %g", what, x, *p.Min)
	}
	if p.Max != nil && x > *p.Max {
		return fmt.Errorf("%s %g is above the maximum %g", what, x, *p.Max)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// UnmarshalJSON reads a JSON object, keeping its key order.
func (vs *Values) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("parameters: want a JSON object")
	}
	*vs = (*vs)[:0]
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return err
		}
		*vs = append(*vs, NamedValue{Name: tok.(string), Value: v})
	}
	return nil
}
