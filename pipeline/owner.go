package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Several processes may write one workdir at once: slices of a run on many machines, or two
// runs of one config. Files they share are written under temporary names that say whose they
// are, so that a writer removes only temporaries it can prove are abandoned:
//
//	.tmp-<final name>~<machine>~<pid>~<random>
//
// <machine> names a kernel and a process-id namespace (host name, boot id and pid namespace,
// hashed): two writers with the same <machine> see the same process table, so one can ask
// whether the other's pid is still alive. A temporary is abandoned when its <machine> is this
// process's, its pid is not this process and no such process runs, or, whoever made it, when
// it was last modified more than staleTempAge ago (no writer keeps a temporary open that long:
// a shard is encoded in memory first, then written in one go).

// staleTempAge is how old a temporary of another machine must be before anyone removes it.
const staleTempAge = 24 * time.Hour

// owner identifies this process to the other writers of a workdir.
type owner struct {
	Host    string // host name, for people
	Machine string // kernel + pid namespace (see above)
	PID     int
	Start   uint64 // start time of the process in clock ticks since boot (Linux), 0 if unknown
}

var (
	selfOnce sync.Once
	self     owner
)

// currentOwner returns this process's identity.
func currentOwner() owner {
	selfOnce.Do(func() {
		host, _ := os.Hostname()
		boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
		ns, _ := os.Readlink("/proc/self/ns/pid")
		sum := sha256.Sum256([]byte(host + "\n" + strings.TrimSpace(string(boot)) + "\n" + ns))
		self = owner{Host: host, Machine: hex.EncodeToString(sum[:6]), PID: os.Getpid()}
		self.Start, _ = procStart(self.PID)
	})
	return self
}

// procStart returns the start time of process pid (field 22 of /proc/pid/stat), which tells a
// process from a later one that reuses its pid.
func procStart(pid int) (uint64, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces and parentheses
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return 0, false
	}
	v, err := strconv.ParseUint(fields[19], 10, 64)
	return v, err == nil
}

// alive reports whether process pid of this machine still runs; start, when known (non-zero),
// must also match, so that a reused pid does not count.
func alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	if start != 0 {
		if got, ok := procStart(pid); ok && got != start {
			return false
		}
	}
	return true
}

// tempPattern is the os.CreateTemp pattern for a temporary of the file named base.
func tempPattern(base string) string {
	o := currentOwner()
	return ".tmp-" + base + "~" + o.Machine + "~" + strconv.Itoa(o.PID) + "~*"
}

// abandonedTemp reports whether the temporary file name (in a directory entry of info) may be
// removed by this process (see the rule at the top of this file).
func abandonedTemp(name string, info os.FileInfo, now time.Time) bool {
	if !strings.HasPrefix(name, ".tmp-") {
		return false
	}
	if now.Sub(info.ModTime()) > staleTempAge {
		return true
	}
	parts := strings.Split(name, "~")
	if len(parts) < 4 {
		return false // a name of another program or version: only age counts
	}
	machine, pidText := parts[len(parts)-3], parts[len(parts)-2]
	pid, err := strconv.Atoi(pidText)
	me := currentOwner()
	if err != nil || machine != me.Machine || pid == me.PID {
		return false
	}
	return !alive(pid, 0)
}

// removeAbandonedTemps deletes the temporaries in dir that killed writers left behind, and no
// other: a temporary another live process is writing stays.
func removeAbandonedTemps(dir string) {
	entries, _ := os.ReadDir(dir)
	now := time.Now()
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".tmp-") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		if abandonedTemp(e.Name(), info, now) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
