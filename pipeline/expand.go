package pipeline

import (
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// envRef matches ${NAME} in a config value. Only the braced form is expanded, so that a literal
// $ (in a prompt, say) stays as written; $${ writes a literal ${.
var envRef = regexp.MustCompile(`\$\$\{|\$\{([^}]*)\}`)

// envName is what a variable name may be.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ExpandEnv replaces every ${NAME} in s by the value lookup gives for NAME; $${ stands for a
// literal ${. A variable that is unset or empty is an error naming it, as is a malformed
// reference: a config that names ${COCOFLOW_MODELS}/sdxl must not quietly become /sdxl.
func ExpandEnv(s string, lookup func(string) (string, bool)) (string, error) {
	var err error
	out := envRef.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$${" {
			return "${"
		}
		name := m[2 : len(m)-1]
		if !envName.MatchString(name) {
			if err == nil {
				err = fmt.Errorf("%q is not a variable reference: want ${NAME} with NAME of letters, digits and _", m)
			}
			return m
		}
		v, ok := lookup(name)
		if (!ok || v == "") && err == nil {
			err = fmt.Errorf("environment variable %s is unset or empty (the value %q needs it)", name, s)
		}
		return v
	})
	if err == nil && strings.Contains(envRef.ReplaceAllString(s, ""), "${") {
		err = fmt.Errorf("unbalanced ${ in %q", s)
	}
	return out, err
}

// expandEnvNodes expands ${NAME} in every string scalar below n (values only, never keys), so
// that an error names the line and column of the value.
func expandEnvNodes(pos Pos, n *yaml.Node, lookup func(string) (string, bool)) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag != "!!str" || !strings.Contains(n.Value, "${") {
			return nil
		}
		v, err := ExpandEnv(n.Value, lookup)
		if err != nil {
			return pos.At(n).Errorf("%v", err)
		}
		n.Value = v
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			if err := expandEnvNodes(pos, n.Content[i], lookup); err != nil {
				return err
			}
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, c := range n.Content {
			if err := expandEnvNodes(pos, c, lookup); err != nil {
				return err
			}
		}
	}
	return nil
}

// Override sets one stage parameter from outside the config file: `--set ingest.limit=8`.
type Override struct {
	Stage, Param string
	Value        string // YAML text of the value: 8, true, "a b", [1, 2]
}

// ParseOverride reads STAGE.PARAM=VALUE.
func ParseOverride(s string) (Override, error) {
	key, val, ok := strings.Cut(s, "=")
	stage, param, dot := strings.Cut(key, ".")
	if !ok || !dot || stage == "" || param == "" {
		return Override{}, fmt.Errorf("--set %q: want STAGE.PARAM=VALUE, e.g. ingest.limit=8", s)
	}
	return Override{Stage: stage, Param: param, Value: val}, nil
}

func (o Override) String() string { return "--set " + o.Stage + "." + o.Param + "=" + o.Value }

// applyOverrides writes each override into its stage's with: mapping of the config tree, so
// that it is validated like a value written in the file (an error names the override).
func applyOverrides(pos Pos, root *yaml.Node, overrides []Override) error {
	if len(overrides) == 0 {
		return nil
	}
	var stages *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "stages" {
			stages = root.Content[i+1]
		}
	}
	for _, o := range overrides {
		var val yaml.Node
		if err := yaml.Unmarshal([]byte(o.Value), &val); err != nil {
			return fmt.Errorf("%s: the value is not YAML: %v", o, err)
		}
		node := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: ""}
		if len(val.Content) > 0 {
			node = val.Content[0]
		}
		node.Line, node.Column = 0, 0 // errors about it name the config, and the message names the override
		stage := findStage(stages, o.Stage)
		if stage == nil {
			return pos.Errorf("%s: the config has no stage %q", o, o.Stage)
		}
		with := mapValue(stage, "with")
		if with == nil || with.Kind != yaml.MappingNode {
			with = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			setMapValue(stage, "with", with)
		}
		setMapValue(with, o.Param, node)
	}
	return nil
}

func findStage(stages *yaml.Node, id string) *yaml.Node {
	if stages == nil || stages.Kind != yaml.SequenceNode {
		return nil
	}
	for _, s := range stages.Content {
		if v := mapValue(s, "id"); v != nil && v.Value == id {
			return s
		}
	}
	return nil
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func setMapValue(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}
