package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// reorderArgs lets flags follow positional arguments, as in `cocoflow run train.yaml --force`
// or `cocoflow inspect DIR -n 1`: the command-line parser stops at the first positional
// argument, so this moves every flag of the command (with its value) before the positional
// ones, and every global flag (--quiet, --verbose) before the command. A "--" ends the flags:
// what follows it stays positional. Arguments of unknown commands are left as they are.
func reorderArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	global, rest := splitGlobal(app, args[1:])
	if len(rest) == 0 {
		return args
	}
	cmd := app.Command(rest[0])
	if cmd == nil {
		return args
	}
	var flags, positional []string
	tail := rest[1:]
	for i := 0; i < len(tail); i++ {
		a := tail[i]
		if a == "--" {
			positional = append(positional, tail[i:]...)
			break
		}
		if !isFlag(a) {
			positional = append(positional, a)
			continue
		}
		name, hasValue := flagName(a)
		if f := lookupFlag(app.Flags, name); f != nil {
			global = append(global, a)
			if !hasValue && takesValue(f) && i+1 < len(tail) {
				global = append(global, tail[i+1])
				i++
			}
			continue
		}
		flags = append(flags, a)
		if f := lookupFlag(cmd.Flags, name); f != nil && !hasValue && takesValue(f) && i+1 < len(tail) {
			flags = append(flags, tail[i+1])
			i++
		}
	}
	out := append([]string{args[0]}, global...)
	out = append(out, rest[0])
	out = append(out, flags...)
	return append(out, positional...)
}

// splitGlobal returns the global flags before the command, and the command with what follows.
func splitGlobal(app *cli.App, args []string) (global, rest []string) {
	for i := 0; i < len(args); i++ {
		if !isFlag(args[i]) {
			return global, args[i:]
		}
		global = append(global, args[i])
		name, hasValue := flagName(args[i])
		if f := lookupFlag(app.Flags, name); f != nil && !hasValue && takesValue(f) && i+1 < len(args) {
			global = append(global, args[i+1])
			i++
		}
	}
	return global, nil
}

func isFlag(a string) bool { return len(a) > 1 && a[0] == '-' }

// flagName returns the name of a flag argument ("--workers=2" -> "workers") and whether the
// value came with it.
func flagName(a string) (string, bool) {
	name := strings.TrimLeft(a, "-")
	if i := strings.IndexByte(name, '='); i >= 0 {
		return name[:i], true
	}
	return name, false
}

func lookupFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

// takesValue reports whether a flag reads the next argument as its value.
func takesValue(f cli.Flag) bool {
	_, isBool := f.(*cli.BoolFlag)
	return !isBool
}
