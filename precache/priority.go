package precache

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Priority is how much of the node a precache may take: the node runs its
// cluster meanwhile. The agent runs its pulls under nice and ionice.
type Priority struct {
	// Nice is the CPU niceness, -20 to 19.
	Nice int
	// IOClass is the I/O scheduling class: "idle", "best-effort" or
	// "realtime"; IOLevel its level, 0 (highest) to 7, for the last two.
	IOClass string
	IOLevel int
}

// DefaultPriority is low: niceness 19 and the idle I/O class, which gets
// the disk only when nothing else asks for it.
var DefaultPriority = Priority{Nice: 19, IOClass: "idle"}

// ParsePriority reads a --priority value: "low" (DefaultPriority),
// "normal" (niceness 0, best-effort 4: what a process gets by default), or
// NICE[,CLASS[:LEVEL]] such as 10,best-effort:7.
func ParsePriority(s string) (Priority, error) {
	switch s {
	case "low":
		return DefaultPriority, nil
	case "normal":
		return Priority{Nice: 0, IOClass: "best-effort", IOLevel: 4}, nil
	}
	nice, class, _ := strings.Cut(s, ",")
	n, err := strconv.Atoi(nice)
	if err != nil || n < -20 || n > 19 {
		return Priority{}, fmt.Errorf("priority %q: want low, normal, or NICE[,CLASS[:LEVEL]] with NICE from -20 to 19", s)
	}
	p := Priority{Nice: n, IOClass: "best-effort", IOLevel: 4}
	if class != "" {
		c, level, hasLevel := strings.Cut(class, ":")
		p.IOClass = c
		if hasLevel {
			if p.IOLevel, err = strconv.Atoi(level); err != nil || p.IOLevel < 0 || p.IOLevel > 7 {
				return Priority{}, fmt.Errorf("priority %q: the I/O level %q is not 0 to 7", s, level)
			}
		}
	}
	if _, err := p.ioprio(); err != nil {
		return Priority{}, fmt.Errorf("priority %q: %w", s, err)
	}
	return p, nil
}

// The I/O classes of ioprio_set(2).
const (
	ioprioClassRealtime   = 1
	ioprioClassBestEffort = 2
	ioprioClassIdle       = 3
	ioprioClassShift      = 13
	ioprioWhoProcess      = 1
)

func (p Priority) ioprio() (int, error) {
	switch p.IOClass {
	case "idle":
		return ioprioClassIdle << ioprioClassShift, nil
	case "best-effort":
		return ioprioClassBestEffort<<ioprioClassShift | p.IOLevel, nil
	case "realtime":
		return ioprioClassRealtime<<ioprioClassShift | p.IOLevel, nil
	}
	return 0, fmt.Errorf("unknown I/O class %q: want idle, best-effort or realtime", p.IOClass)
}

// Apply sets the priority of every thread of the process (on Linux both
// are a thread's: a thread made later takes its maker's) and returns what
// puts each thread's back. A thread it cannot change is left as it is.
func (p Priority) Apply() (restore func(), err error) {
	io, err := p.ioprio()
	if err != nil {
		return func() {}, err
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return func() {}, fmt.Errorf("listing the process's threads: %w", err)
	}
	type saved struct{ tid, nice, io int }
	var before []saved
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		prio, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
		if err != nil {
			continue
		}
		oldIO, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
		if errno != 0 {
			continue
		}
		// getpriority(2) returns 20 - nice.
		before = append(before, saved{tid, 20 - prio, int(oldIO)})
		_ = unix.Setpriority(unix.PRIO_PROCESS, tid, p.Nice)
		unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), uintptr(io))
	}
	return func() {
		for _, s := range before {
			_ = unix.Setpriority(unix.PRIO_PROCESS, s.tid, s.nice)
			unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(s.tid), uintptr(s.io))
		}
	}, nil
}
