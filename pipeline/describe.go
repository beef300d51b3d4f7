package pipeline

import (
	"fmt"
	"strings"
	"text/tabwriter"
)

// DescribeKind renders a kind for `cocoflow stages`: its doc, ports and parameters; with detail,
// also the Parquet schema of each output.
func DescribeKind(k *Kind, detail bool) string {
	var b strings.Builder
	mode := "whole-dataset"
	if k.Sharded {
		mode = "shard-parallel"
	}
	fmt.Fprintf(&b, "%s (v%s, %s)\n", k.Name, k.Version, mode)
	for _, line := range wrap(k.Doc, 88) {
		fmt.Fprintf(&b, "  %s\n", line)
	}
	ports := func(label string, ps []Port) {
		if len(ps) == 0 {
			return
		}
		fmt.Fprintf(&b, "  %s:\n", label)
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, p := range ps {
			opt := ""
			if p.List {
				opt = " (list)"
			}
			if p.Optional {
				opt += " (optional)"
			}
			fmt.Fprintf(tw, "    %s%s\t%s\n", p.Name, opt, p.Doc)
		}
		tw.Flush()
	}
	ports("inputs", k.Inputs)
	ports("outputs", k.Outputs)
	if len(k.Params.Params) > 0 {
		fmt.Fprintf(&b, "  parameters:\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, p := range k.Params.Params {
			def := p.Default
			switch {
			case p.Required:
				def = "required"
			case def == "":
				def = "-"
			default:
				def = "default " + def
			}
			doc := p.Doc
			if len(p.Enum) > 0 {
				doc += " (" + strings.Join(p.Enum, "|") + ")"
			}
			fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\n", p.Name, p.Type, def, doc)
		}
		tw.Flush()
	}
	if detail {
		for _, p := range k.Outputs {
			if p.Schema == nil {
				continue
			}
			fmt.Fprintf(&b, "  schema of %s:\n", p.Name)
			for _, line := range strings.Split(strings.TrimSpace(schemaOfValue(p.Schema)), "\n") {
				fmt.Fprintf(&b, "    %s\n", line)
			}
		}
	}
	return b.String()
}

func wrap(text string, width int) []string {
	var lines []string
	var cur strings.Builder
	for _, w := range strings.Fields(text) {
		if cur.Len() > 0 && cur.Len()+1+len(w) > width {
			lines = append(lines, cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte(' ')
		}
		cur.WriteString(w)
	}
	if cur.Len() > 0 {
		lines = append(lines, cur.String())
	}
	return lines
}
