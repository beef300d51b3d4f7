package pipeline

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

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
