// Command cocoflow runs the CoCoIns study as composable stages that exchange Parquet shards:
//
//	cocoflow run experiments/tiny/prep.yaml    # images -> captions -> masks -> latents -> triplets
//	cocoflow run experiments/tiny/train.yaml   # the mapping network, trained contrastively
//	cocoflow run experiments/tiny/eval.yaml    # generate with subject codes, score, write tables
//
// Exit status: 0 on success; 1 with a one-line cause on stderr on any failure; 2 for usage errors.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	_ "github.com/cocoflow/cocoflow/models/family/sdxl" // registers the sdxl family (model_dir: an ONNX export of SDXL)
	"github.com/cocoflow/cocoflow/models/runtime/engine"
	"github.com/cocoflow/cocoflow/models/runtime/ort"
	"github.com/cocoflow/cocoflow/pipeline"
	_ "github.com/cocoflow/cocoflow/stages" // registers every stage kind
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := newApp()
	err := app.RunContext(ctx, reorderArgs(app, os.Args))
	if err == nil {
		return
	}
	var usage usageError
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	fmt.Fprintln(os.Stderr, "cocoflow: "+msg)
	if errors.As(err, &usage) {
		os.Exit(2)
	}
	os.Exit(1)
}

type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func newApp() *cli.App {
	app := &cli.App{
		Name:                 "cocoflow",
		Usage:                "reproduce CoCoIns (consistent subjects via contrastive instantiated concepts) as composable stages",
		Version:              pipeline.Version,
		EnableBashCompletion: true,
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "log warnings and errors only"},
			&cli.BoolFlag{Name: "verbose", Usage: "log debug messages"},
		},
		Commands: []*cli.Command{
			runCommand(),
			validateCommand(),
			stagesCommand(),
			inspectCommand(),
			tokenizeCommand(),
			versionCommand(),
		},
	}
	for _, c := range app.Commands {
		c.OnUsageError = app.OnUsageError
	}
	cli.VersionPrinter = func(c *cli.Context) { printVersion(c.App.Writer) }
	return app
}

func init() {
	pipeline.RegisterVersion("onnxruntime", ortVersion)
	pipeline.RegisterVersion("gomlx_backend", engine.Describe)
}

// ortVersion returns the version and path of the ONNX Runtime library this process uses (or
// would use), or why there is none.
func ortVersion() string {
	if v, err := ort.Version(); err == nil {
		return v
	}
	if err := ort.Init(""); err != nil {
		return "unavailable: " + err.Error()
	}
	v, err := ort.Version()
	if err != nil {
		return "unavailable: " + err.Error()
	}
	return v + " (" + ort.LibraryPath("") + ")"
}

func logger(c *cli.Context) *slog.Logger {
	level := slog.LevelInfo
	switch {
	case c.Bool("quiet"):
		level = slog.LevelWarn
	case c.Bool("verbose"):
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run a config's stages; up-to-date stages and shards are skipped",
		ArgsUsage: "CONFIG.yaml",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "workdir", Usage: "directory for run outputs (overrides the config's workdir, default runs/)"},
			&cli.BoolFlag{Name: "force", Usage: "recompute stages and shards even when up to date"},
			&cli.StringSliceFlag{Name: "only", Usage: "run only this stage (repeatable); its inputs must already exist"},
			&cli.IntFlag{Name: "shard-index", Value: -1, DefaultText: "none", Usage: "with --shard-count: run shards i where i % count == index (one worker of many)"},
			&cli.IntFlag{Name: "shard-count", DefaultText: "none", Usage: "number of workers sharing the shards (also from Slurm array / Kubernetes Indexed Job variables)"},
			&cli.IntFlag{Name: "workers", DefaultText: "GOMAXPROCS", Usage: "shards processed concurrently per stage"},
			&cli.BoolFlag{Name: "wait", Usage: "if another run without --shard-index is using the run directory, wait for it instead of failing"},
			&cli.BoolFlag{Name: "verify", Usage: "hash every shard before reusing it; without it only shards whose size or modification time changed are hashed"},
			&cli.BoolFlag{Name: "retry-failed", Usage: "make every failed row again, permanent failures included (transient ones are always retried)"},
			&cli.Float64Flag{Name: "max-failed-share", Value: pipeline.DefaultMaxFailedShare, Usage: "fail a stage when more than this share of its rows failed (0: any failed row)"},
			setFlag,
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("run: want exactly one config file, got %d arguments (%s)", c.NArg(), strings.Join(c.Args().Slice(), " "))
			}
			share := c.Float64("max-failed-share")
			if share < 0 || share > 1 {
				return usagef("--max-failed-share: want a share from 0 to 1, got %g", share)
			}
			if share == 0 {
				share = -1 // pipeline.Options: negative means no failed row is allowed
			}
			overrides, err := overridesOf(c)
			if err != nil {
				return err
			}
			cfg, err := pipeline.LoadConfig(c.Args().First(), overrides...)
			if err != nil {
				return err
			}
			slice, err := sliceOf(c)
			if err != nil {
				return err
			}
			opt := pipeline.Options{
				Workdir: c.String("workdir"),
				Force:   c.Bool("force"),
				Only:    c.StringSlice("only"),
				Slice:   slice,
				Workers: c.Int("workers"),
				Log:     logger(c),
				Args:    os.Args,

				Wait:           c.Bool("wait"),
				Verify:         c.Bool("verify"),
				RetryFailed:    c.Bool("retry-failed"),
				MaxFailedShare: share,
			}
			if term.IsTerminal(int(os.Stderr.Fd())) && !c.Bool("quiet") {
				opt.Terminal = os.Stderr
			}
			_, err = pipeline.Run(c.Context, cfg, opt)
			return err
		},
	}
}

func sliceOf(c *cli.Context) (pipeline.Slice, error) {
	if c.IsSet("shard-index") || c.IsSet("shard-count") {
		if !c.IsSet("shard-index") || !c.IsSet("shard-count") {
			return pipeline.Slice{}, usagef("--shard-index and --shard-count go together")
		}
		s := pipeline.Slice{Index: c.Int("shard-index"), Count: c.Int("shard-count")}
		if s.Count < 1 {
			return s, usagef("--shard-count must be at least 1")
		}
		return s, s.Validate()
	}
	s, _, err := pipeline.SliceFromEnv(os.Getenv)
	return s, err
}

// setFlag is --set STAGE.PARAM=VALUE of run and validate. Its values are kept whole (a
// StringSliceFlag would split [1, 2] at the comma).
var setFlag = &cli.GenericFlag{Name: "set", Value: &overrideList{}, Usage: "override a stage parameter, STAGE.PARAM=VALUE (repeatable; VALUE is YAML: 8, true, [1, 2])"}

// overrideList collects --set values.
type overrideList struct{ list []pipeline.Override }

func (l *overrideList) Set(s string) error {
	o, err := pipeline.ParseOverride(s)
	if err != nil {
		return err
	}
	l.list = append(l.list, o)
	return nil
}

func (l *overrideList) String() string {
	if l == nil {
		return ""
	}
	parts := make([]string, len(l.list))
	for i, o := range l.list {
		parts[i] = o.String()
	}
	return strings.Join(parts, " ")
}

func overridesOf(c *cli.Context) ([]pipeline.Override, error) {
	if l, ok := c.Generic("set").(*overrideList); ok && l != nil {
		return l.list, nil
	}
	return nil, nil
}

func validateCommand() *cli.Command {
	return &cli.Command{
		Name:      "validate",
		Usage:     "check configs (syntax, stage kinds, parameters, inputs, cycles) without running them",
		ArgsUsage: "CONFIG.yaml...",
		Flags:     []cli.Flag{setFlag},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usagef("validate: want one or more config files")
			}
			overrides, err := overridesOf(c)
			if err != nil {
				return err
			}
			var failed []string
			for _, path := range c.Args().Slice() {
				cfg, err := pipeline.LoadConfig(path, overrides...)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					failed = append(failed, path)
					continue
				}
				order, _ := cfg.Order()
				ids := make([]string, len(order))
				for i, sc := range order {
					ids[i] = sc.ID
				}
				fmt.Printf("ok  %s  run %q: %s\n", path, cfg.Name, strings.Join(ids, " -> "))
			}
			if len(failed) > 0 {
				return fmt.Errorf("%d of %d configs invalid: %s", len(failed), c.NArg(), strings.Join(failed, ", "))
			}
			return nil
		},
	}
}

func stagesCommand() *cli.Command {
	return &cli.Command{
		Name:      "stages",
		Usage:     "list the stage kinds with their inputs, outputs and parameters",
		ArgsUsage: "[KIND...]",
		Action: func(c *cli.Context) error {
			names := c.Args().Slice()
			detail := len(names) > 0
			if !detail {
				names = pipeline.KindNames()
			}
			for i, name := range names {
				k, ok := pipeline.Lookup(name)
				if !ok {
					return fmt.Errorf("no stage kind %q (kinds: %s)", name, strings.Join(pipeline.KindNames(), ", "))
				}
				if i > 0 {
					fmt.Println()
				}
				fmt.Print(pipeline.DescribeKind(k, detail))
			}
			return nil
		},
	}
}

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "show a dataset's or shard's schema, row count and first rows; for a run directory, its datasets",
		ArgsUsage: "PATH",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "rows", Aliases: []string{"n"}, Value: 3, Usage: "rows to print"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("inspect: want one dataset directory, shard file or run directory")
			}
			return pipeline.Inspect(c.Context, c.Args().First(), c.Int("rows"), os.Stdout)
		},
	}
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version of cocoflow, Go and the engines",
		Action: func(c *cli.Context) error {
			printVersion(os.Stdout)
			return nil
		},
	}
}

// printVersion prints what `cocoflow version` and `cocoflow --version` show: cocoflow, Go, the
// main modules, the ONNX Runtime library and the GoMLX backend.
func printVersion(w io.Writer) {
	b := pipeline.CurrentBuild()
	fmt.Fprintf(w, "cocoflow %s\n", b.Cocoflow)
	if b.Revision != "" {
		mod := ""
		if b.Modified {
			mod = " (modified)"
		}
		fmt.Fprintf(w, "revision %s%s\n", b.Revision, mod)
	}
	fmt.Fprintf(w, "go %s %s/%s\n", b.Go, b.OS, b.Arch)
	for _, m := range []string{"github.com/gomlx/gomlx", "github.com/gomlx/onnx-gomlx", "github.com/yalue/onnxruntime_go", "github.com/parquet-go/parquet-go", "github.com/apache/arrow-go/v18"} {
		if v, ok := b.Modules[m]; ok {
			fmt.Fprintf(w, "%s %s\n", m, v)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(b.Extra)) {
		fmt.Fprintf(w, "%s %s\n", k, b.Extra[k])
	}
}
