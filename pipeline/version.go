package pipeline

import (
	"os"
	"runtime"
	"runtime/debug"
	"sort"
)

// Version is cocoflow's version, set at build time with
// -ldflags "-X github.com/cocoflow/cocoflow/pipeline.Version=v1.2.3".
var Version = "dev"

// BuildInfo describes the program that made a run: versions of cocoflow, Go and every module,
// the source revision when the binary was built from a git checkout, and the machine.
type BuildInfo struct {
	Cocoflow   string            `json:"cocoflow"`
	Revision   string            `json:"revision,omitempty"`
	Modified   bool              `json:"modified,omitempty"`
	Go         string            `json:"go"`
	OS         string            `json:"os"`
	Arch       string            `json:"arch"`
	CPUs       int               `json:"cpus"`
	GOMAXPROCS int               `json:"gomaxprocs"`
	Host       string            `json:"host,omitempty"`
	Modules    map[string]string `json:"modules,omitempty"`
	Extra      map[string]string `json:"extra,omitempty"`
}

var extraVersions = map[string]func() string{}

// RegisterVersion adds a named version probe (an engine's backend, a runtime library) to every
// run manifest.
func RegisterVersion(name string, probe func() string) { extraVersions[name] = probe }

// CurrentBuild returns the BuildInfo of this process.
func CurrentBuild() BuildInfo {
	b := BuildInfo{
		Cocoflow:   Version,
		Go:         runtime.Version(),
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
		CPUs:       runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		Modules:    map[string]string{},
	}
	b.Host, _ = os.Hostname()
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Revision = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
		for _, m := range info.Deps {
			v := m.Version
			if m.Replace != nil {
				v += " => " + m.Replace.Path + " " + m.Replace.Version
			}
			b.Modules[m.Path] = v
		}
		if Version == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			b.Cocoflow = info.Main.Version
		}
	}
	names := make([]string, 0, len(extraVersions))
	for n := range extraVersions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if b.Extra == nil {
			b.Extra = map[string]string{}
		}
		b.Extra[n] = extraVersions[n]()
	}
	return b
}
