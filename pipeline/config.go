package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config is a parsed run configuration: a named run and its stages.
//
//	name: tiny-prep          # the run name: outputs go to <workdir>/<name>/<stage id>/
//	workdir: runs            # optional, default "runs" (relative to the current directory)
//	seed: 1                  # optional, default 0: the run seed every stage derives its own from
//	stages:
//	  - id: ingest           # unique within the run
//	    uses: ingest         # the stage kind (see `cocoflow stages`)
//	    with: {...}          # the kind's parameters
//	  - id: caption
//	    uses: caption
//	    inputs: {images: ingest}   # input port -> dataset reference
type Config struct {
	Path    string // file the config was read from ("" for in-memory)
	Name    string
	Workdir string
	Seed    uint64
	Stages  []*StageConfig
}

// StageConfig is one entry of a config's stage list, validated against its kind.
type StageConfig struct {
	ID     string
	Uses   string
	Kind   *Kind
	Params any               // *P of the kind's params struct, defaults filled in
	Inputs map[string]string // port -> reference, as written
	Line   int

	inputLines map[string]Pos
	pos        Pos
}

// Pos is a position in a config file, used to make errors that name the file and line.
type Pos struct {
	File      string
	Line, Col int
}

// At returns the position of node in the same file.
func (p Pos) At(node *yaml.Node) Pos {
	if node == nil || node.Line == 0 {
		return p
	}
	return Pos{File: p.File, Line: node.Line, Col: node.Column}
}

// Errorf makes an error prefixed with file:line:col.
func (p Pos) Errorf(format string, args ...any) error {
	return &ConfigError{Pos: p, Msg: fmt.Sprintf(format, args...)}
}

// ConfigError is an error in a config file; its message starts with file:line:col.
type ConfigError struct {
	Pos Pos
	Msg string
}

func (e *ConfigError) Error() string {
	file := e.Pos.File
	if file == "" {
		file = "<config>"
	}
	if e.Pos.Line == 0 {
		return file + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d:%d: %s", file, e.Pos.Line, e.Pos.Col, e.Msg)
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// LoadConfig reads and validates a config file: syntax, known keys, parameter types and bounds,
// stage kinds, input references, duplicate ids and cycles. Every error names the file and line.
// Overrides (`cocoflow run --set`) replace or add stage parameters before validation.
func LoadConfig(path string, overrides ...Override) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(path, data, overrides...)
}

// ParseConfig parses config text; path is used in error messages and to resolve nothing else.
func ParseConfig(path string, data []byte, overrides ...Override) (*Config, error) {
	pos := Pos{File: path}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil, pos.Errorf("empty config (nothing but blanks or comments): want a mapping with name and stages, e.g. experiments/tiny/prep.yaml")
	} else if err != nil {
		return nil, yamlError(pos, err)
	}
	if len(doc.Content) == 0 {
		return nil, pos.Errorf("empty config: want a mapping with name and stages")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, pos.At(root).Errorf("config must be a mapping with name and stages, got %s", nodeKind(root))
	}
	if err := applyOverrides(pos, root, overrides); err != nil {
		return nil, err
	}
	cfg := &Config{Path: path, Workdir: "runs"}
	var stagesNode *yaml.Node
	err := eachKey(pos, root, "config", []string{"name", "workdir", "seed", "description", "stages"}, func(key string, val *yaml.Node) error {
		switch key {
		case "name":
			if err := scalarInto(pos, val, "name", &cfg.Name); err != nil {
				return err
			}
			if !idPattern.MatchString(cfg.Name) {
				return pos.At(val).Errorf("run name %q: use lower-case letters, digits, - and _", cfg.Name)
			}
		case "workdir":
			return scalarInto(pos, val, "workdir", &cfg.Workdir)
		case "seed":
			if val.Kind != yaml.ScalarNode || val.Tag != "!!int" {
				return pos.At(val).Errorf("seed: want a non-negative integer, got %s", nodeKind(val))
			}
			if err := val.Decode(&cfg.Seed); err != nil {
				return pos.At(val).Errorf("seed: want a non-negative integer, got %s", val.Value)
			}
		case "description":
		case "stages":
			stagesNode = val
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		return nil, pos.At(root).Errorf("missing run name (name: ...)")
	}
	if stagesNode == nil || stagesNode.Kind != yaml.SequenceNode || len(stagesNode.Content) == 0 {
		return nil, pos.At(root).Errorf("missing stages: want a non-empty list of stages")
	}
	ids := map[string]*StageConfig{}
	for _, sn := range stagesNode.Content {
		sc, err := parseStage(pos, sn)
		if err != nil {
			return nil, err
		}
		if prev, dup := ids[sc.ID]; dup {
			return nil, sc.pos.Errorf("duplicate stage id %q (first defined on line %d)", sc.ID, prev.Line)
		}
		ids[sc.ID] = sc
		cfg.Stages = append(cfg.Stages, sc)
	}
	if err := cfg.checkGraph(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func yamlError(pos Pos, err error) error {
	// yaml.v3 reports "yaml: line N: msg"; keep its line but name the file.
	msg := err.Error()
	var line int
	if _, scanErr := fmt.Sscanf(msg, "yaml: line %d:", &line); scanErr == nil {
		rest := msg[strings.Index(msg, ":")+1:]
		rest = rest[strings.Index(rest, ":")+1:]
		return &ConfigError{Pos: Pos{File: pos.File, Line: line, Col: 1}, Msg: "invalid YAML:" + rest}
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return pos.Errorf("invalid YAML: %s", strings.Join(te.Errors, "; "))
	}
	return pos.Errorf("invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

func eachKey(pos Pos, m *yaml.Node, what string, known []string, fn func(key string, val *yaml.Node) error) error {
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if !contains(known, k.Value) {
			return pos.At(k).Errorf("unknown key %q in %s (known: %s)", k.Value, what, strings.Join(known, ", "))
		}
		if seen[k.Value] {
			return pos.At(k).Errorf("key %q given twice in %s", k.Value, what)
		}
		seen[k.Value] = true
		if err := fn(k.Value, v); err != nil {
			return err
		}
	}
	return nil
}

func scalarInto(pos Pos, n *yaml.Node, what string, dst *string) error {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" || n.Value == "" {
		return pos.At(n).Errorf("%s: want a string, got %s", what, nodeKind(n))
	}
	*dst = n.Value
	return nil
}

func parseStage(pos Pos, sn *yaml.Node) (*StageConfig, error) {
	if sn.Kind != yaml.MappingNode {
		return nil, pos.At(sn).Errorf("stage: want a mapping with id, uses, with, inputs; got %s", nodeKind(sn))
	}
	sc := &StageConfig{Line: sn.Line, pos: pos.At(sn), Inputs: map[string]string{}, inputLines: map[string]Pos{}}
	var withNode, usesNode *yaml.Node
	err := eachKey(pos, sn, "stage", []string{"id", "uses", "with", "inputs", "description"}, func(key string, val *yaml.Node) error {
		switch key {
		case "id":
			if err := scalarInto(pos, val, "id", &sc.ID); err != nil {
				return err
			}
			if !idPattern.MatchString(sc.ID) {
				return pos.At(val).Errorf("stage id %q: use lower-case letters, digits, - and _", sc.ID)
			}
		case "uses":
			usesNode = val
			return scalarInto(pos, val, "uses", &sc.Uses)
		case "with":
			withNode = val
		case "inputs":
			if val.Kind != yaml.MappingNode {
				return pos.At(val).Errorf("inputs: want a mapping of port: dataset, got %s", nodeKind(val))
			}
			for i := 0; i+1 < len(val.Content); i += 2 {
				k, v := val.Content[i], val.Content[i+1]
				if v.Kind == yaml.SequenceNode { // a list port: one entry per dataset, in order
					if len(v.Content) == 0 {
						return pos.At(v).Errorf("input %s: an empty list", k.Value)
					}
					for n, item := range v.Content {
						var ref string
						if err := scalarInto(pos, item, "input "+k.Value, &ref); err != nil {
							return err
						}
						key := listPort(k.Value, n)
						sc.Inputs[key] = ref
						sc.inputLines[key] = pos.At(item)
					}
					continue
				}
				var ref string
				if err := scalarInto(pos, v, "input "+k.Value, &ref); err != nil {
					return err
				}
				sc.Inputs[k.Value] = ref
				sc.inputLines[k.Value] = pos.At(v)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if sc.ID == "" {
		return nil, sc.pos.Errorf("stage without id")
	}
	if sc.Uses == "" {
		return nil, sc.pos.Errorf("stage %q: missing uses (the stage kind; see `cocoflow stages`)", sc.ID)
	}
	kind, ok := Lookup(sc.Uses)
	if !ok {
		return nil, pos.At(usesNode).Errorf("stage %q: unknown stage kind %q (known: %s)", sc.ID, sc.Uses, strings.Join(KindNames(), ", "))
	}
	sc.Kind = kind
	params, err := kind.Params.Decode(withNode, pos.At(sn))
	if err != nil {
		return nil, prefixStage(sc.ID, err)
	}
	if kind.Check != nil {
		if err := kind.Check(params); err != nil {
			at := pos.At(sn)
			if withNode != nil {
				at = pos.At(withNode)
			}
			var pe *ParamError
			if errors.As(err, &pe) {
				if v := mapValue(withNode, pe.Param); v != nil {
					at = pos.At(v)
				}
			}
			return nil, at.Errorf("stage %q: %v", sc.ID, err)
		}
	}
	sc.Params = params
	for port := range sc.Inputs {
		name, listed := splitListPort(port)
		in, ok := kind.input(name)
		if !ok {
			return nil, sc.inputLines[port].Errorf("stage %q: kind %s has no input %q (inputs: %s)", sc.ID, kind.Name, name, strings.Join(portNames(kind.Inputs), ", "))
		}
		if listed && !in.List {
			return nil, sc.inputLines[port].Errorf("stage %q: input %q takes one dataset, not a list", sc.ID, name)
		}
	}
	for _, in := range kind.Inputs {
		_, one := sc.Inputs[in.Name]
		_, many := sc.Inputs[listPort(in.Name, 0)]
		if !one && !many && !in.Optional {
			return nil, sc.pos.Errorf("stage %q: missing input %q (%s)", sc.ID, in.Name, in.Doc)
		}
	}
	return sc, nil
}

func prefixStage(id string, err error) error {
	var ce *ConfigError
	if errors.As(err, &ce) {
		return &ConfigError{Pos: ce.Pos, Msg: fmt.Sprintf("stage %q: %s", id, ce.Msg)}
	}
	return fmt.Errorf("stage %q: %w", id, err)
}

// Ref is a resolved input reference: either an output of a stage in the same config, or a
// dataset directory produced elsewhere (another run, or a path).
type Ref struct {
	Stage  string // producing stage id in this config, "" for external
	Output string // output port of that stage
	Dir    string // external dataset directory (resolved against the workdir), "" for internal
}

// resolveRef interprets a reference as written in a config:
//
//	caption            the only output of stage "caption" in this config
//	encode.tokens      output "tokens" of stage "encode"
//	tiny-prep/triplets a dataset of another run: <workdir>/tiny-prep/triplets/<its only output>
//	./data/x, /abs/x   a dataset directory (one holding _manifest.json)
func (c *Config) resolveRef(ref string) (Ref, error) {
	if strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "./") || strings.HasPrefix(ref, "../") {
		return Ref{Dir: ref}, nil
	}
	if strings.Contains(ref, "/") {
		return Ref{Dir: "@workdir/" + ref}, nil
	}
	stage, port, _ := strings.Cut(ref, ".")
	for _, sc := range c.Stages {
		if sc.ID != stage {
			continue
		}
		if port == "" {
			if len(sc.Kind.Outputs) != 1 {
				return Ref{}, fmt.Errorf("stage %q has outputs %s: name one as %s.<output>", stage, strings.Join(portNames(sc.Kind.Outputs), ", "), stage)
			}
			port = sc.Kind.Outputs[0].Name
		}
		if _, ok := sc.Kind.output(port); !ok {
			return Ref{}, fmt.Errorf("stage %q has no output %q (outputs: %s)", stage, port, strings.Join(portNames(sc.Kind.Outputs), ", "))
		}
		return Ref{Stage: stage, Output: port}, nil
	}
	return Ref{}, fmt.Errorf("no stage %q in this config (for another run's dataset write run/stage, for a directory ./path)", stage)
}

// checkGraph resolves every input and rejects cycles, naming the stages and lines involved.
func (c *Config) checkGraph() error {
	for _, sc := range c.Stages {
		for port, ref := range sc.Inputs {
			r, err := c.resolveRef(ref)
			if err != nil {
				return sc.inputLines[port].Errorf("stage %q input %q: %v", sc.ID, port, err)
			}
			if r.Stage == sc.ID {
				return sc.inputLines[port].Errorf("stage %q reads its own output", sc.ID)
			}
		}
	}
	_, err := c.Order()
	return err
}

// Order returns the stages in an order where every stage comes after the stages it reads;
// among independent stages the config order is kept. A cycle is an error naming it.
func (c *Config) Order() ([]*StageConfig, error) {
	deps := map[string][]string{}
	for _, sc := range c.Stages {
		for _, port := range sortedKeys(sc.Inputs) {
			if r, err := c.resolveRef(sc.Inputs[port]); err == nil && r.Stage != "" {
				deps[sc.ID] = append(deps[sc.ID], r.Stage)
			}
		}
	}
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	byID := map[string]*StageConfig{}
	for _, sc := range c.Stages {
		byID[sc.ID] = sc
	}
	var order []*StageConfig
	var path []string
	var visit func(id string) error
	visit = func(id string) error {
		switch state[id] {
		case done:
			return nil
		case visiting:
			start := 0
			for i, p := range path {
				if p == id {
					start = i
				}
			}
			cycle := append(append([]string{}, path[start:]...), id)
			var lines []string
			for _, s := range cycle[:len(cycle)-1] {
				lines = append(lines, fmt.Sprintf("%s (line %d)", s, byID[s].Line))
			}
			return byID[id].pos.Errorf("stages form a cycle: %s; involved: %s", strings.Join(cycle, " -> "), strings.Join(lines, ", "))
		}
		state[id] = visiting
		path = append(path, id)
		for _, d := range deps[id] {
			if err := visit(d); err != nil {
				return err
			}
		}
		path = path[:len(path)-1]
		state[id] = done
		order = append(order, byID[id])
		return nil
	}
	for _, sc := range c.Stages {
		if err := visit(sc.ID); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// Stage returns the stage with the given id.
func (c *Config) Stage(id string) (*StageConfig, bool) {
	for _, sc := range c.Stages {
		if sc.ID == id {
			return sc, true
		}
	}
	return nil, false
}

// Downstream returns the ids of the stages that read, directly or not, an output of stage id.
func (c *Config) Downstream(id string) []string {
	var out []string
	seen := map[string]bool{id: true}
	changed := true
	for changed {
		changed = false
		for _, sc := range c.Stages {
			if seen[sc.ID] {
				continue
			}
			for _, ref := range sc.Inputs {
				if r, err := c.resolveRef(ref); err == nil && seen[r.Stage] {
					seen[sc.ID] = true
					out = append(out, sc.ID)
					changed = true
					break
				}
			}
		}
	}
	return out
}

// listPort is the internal name of entry n of a list-valued input port ("metrics#003"); the
// zero padding keeps sorted port names in list order.
func listPort(name string, n int) string { return fmt.Sprintf("%s#%03d", name, n) }

// splitListPort returns the declared port name of an internal port name and whether it is a
// list entry.
func splitListPort(port string) (string, bool) {
	if i := strings.IndexByte(port, '#'); i >= 0 {
		return port[:i], true
	}
	return port, false
}
