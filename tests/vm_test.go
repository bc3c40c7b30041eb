package tests

// The booted-node harness: a Debian ostree node OS (hack/mknode.sh) on a
// raw ext4 disk, booted under qemu as a BLS bootloader would boot it. Each
// boot runs one stage script from a 9p share and powers off; the harness
// then reads the disk's boot entries again and boots the default one.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// nodeOS is what hack/mknode.sh made: the node OS X and the seed's base Y.
type nodeOS struct {
	dir      string
	repo     string
	yArchive string
	// yuArchive is Y without its labels: a base that carries an SELinux
	// policy and no labels, as one built on a host without SELinux.
	yuArchive string
	kver      string
}

var (
	nodeOSOnce sync.Once
	nodeOSVal  nodeOS
	nodeOSErr  error
)

// vmTools are the commands the VM tests need; without them the tests fail,
// loudly, rather than skip.
var vmTools = []string{"qemu-system-x86_64", "mmdebstrap", "debugfs", "mkfs.ext4", "ostree", "python3", "zstd"}

// getNodeOS builds the node OS images once per run, in a folder keyed by
// the inputs of hack/mknode.sh. SEEDBUILD_VM_CACHE names a folder to keep
// them in across runs; by default they live and die with the run.
func getNodeOS(t *testing.T) nodeOS {
	t.Helper()
	for _, tool := range vmTools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the VM tests need %s (make deps installs it): %v", tool, err)
		}
	}
	nodeOSOnce.Do(func() { nodeOSVal, nodeOSErr = buildNodeOS() })
	if nodeOSErr != nil {
		t.Fatal(nodeOSErr)
	}
	return nodeOSVal
}

func buildNodeOS() (nodeOS, error) {
	key, err := inputsKey(hackScript("mknode.sh"), hackScript("dir2oci.py"),
		hackScript("vm/stage-runner.sh"), hackScript("vm/seedbuild-vm-stage.service"))
	if err != nil {
		return nodeOS{}, err
	}
	cache := os.Getenv("SEEDBUILD_VM_CACHE")
	if cache == "" {
		cache = filepath.Join(work, "vm-images")
	}
	dir := filepath.Join(cache, "node-"+key[:16])
	if _, err := os.Stat(filepath.Join(dir, "done")); err != nil {
		start := time.Now()
		cmd := exec.Command(hackScript("mknode.sh"), dir)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return nodeOS{}, fmt.Errorf("building the node OS with hack/mknode.sh: %v\n%s", err, tail(out.String(), 40))
		}
		fmt.Fprintf(os.Stderr, "vm: node OS built in %s at %s\n", time.Since(start).Round(time.Second), dir)
	}
	kver, err := os.ReadFile(filepath.Join(dir, "kver"))
	if err != nil {
		return nodeOS{}, err
	}
	return nodeOS{dir: dir, repo: filepath.Join(dir, "repo"), yArchive: filepath.Join(dir, "y.oci-archive"),
		yuArchive: filepath.Join(dir, "yu.oci-archive"),
		kver:      strings.TrimSpace(string(kver))}, nil
}

// inputsKey hashes the named files' content.
func inputsKey(files ...string) (string, error) {
	h := sha256.New()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// nodeKargs are the kernel arguments a node is installed with, as an
// installer would set them, SELinux on.
var nodeKargs = append([]string{"root=/dev/vda", "rw", "console=ttyS0"}, selinuxKargs...)

// makeNode installs OS X into a fresh sysroot, lets state add the node's own
// /etc and /var, and makes the raw disk. It returns the disk's path.
func makeNode(t *testing.T, osImg nodeOS, state func(etc, varDir string)) string {
	t.Helper()
	dir := t.TempDir()
	sys := filepath.Join(dir, "sysroot")
	t.Cleanup(func() { exec.Command(hackScript("rm-sysroot.sh"), sys).Run() })
	if err := os.Mkdir(sys, 0o755); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(sys, "ostree/repo")
	sh(t, nil, "ostree", "admin", "init-fs", sys)
	sh(t, nil, "ostree", "config", "--repo="+repo, "set", "sysroot.bootloader", "none")
	sh(t, nil, "ostree", "--repo="+repo, "pull-local", osImg.repo, "node/x")
	sh(t, nil, "ostree", "admin", "os-init", "--sysroot="+sys, "node")
	args := []string{"admin", "deploy", "--sysroot=" + sys, "--os=node"}
	for _, k := range nodeKargs {
		args = append(args, "--karg="+k)
	}
	sh(t, nil, "ostree", append(args, "node/x")...)
	deps, _ := filepath.Glob(filepath.Join(sys, "ostree/deploy/node/deploy/*.0"))
	if len(deps) != 1 {
		t.Fatalf("want one deployment of node/x, found %v", deps)
	}
	state(filepath.Join(deps[0], "etc"), filepath.Join(sys, "ostree/deploy/node/var"))
	disk := filepath.Join(dir, "disk.raw")
	sh(t, nil, "mkfs.ext4", "-q", "-F", "-L", "root", "-d", sys, disk, "8G")
	// ostree makes deployment roots immutable.
	sh(t, nil, hackScript("rm-sysroot.sh"), sys)
	return disk
}

// bootEntry is a BLS entry as a bootloader reads it.
type blsEntry struct {
	file, title, options, linux, initrd string
	version                             int
}

// replayJournal replays the disk's ext4 journal, if it needs it.
func replayJournal(t *testing.T, disk string) {
	t.Helper()
	out, err := exec.Command("e2fsck", "-y", "-E", "journal_only", disk).CombinedOutput()
	var ee *exec.ExitError
	// 1 and 2 say the journal was replayed; 4 and up, that it could not be.
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() < 4) {
		t.Fatalf("replaying the journal of %s: %v\n%s", disk, err, out)
	}
}

// debugfs runs a debugfs request against the disk, read-only.
func debugfs(t *testing.T, disk, request string) string {
	t.Helper()
	return sh(t, nil, "debugfs", "-R", request, disk)
}

// defaultEntry reads the disk's boot entries and picks the one with the
// highest version, as a BLS bootloader does. After a power cut the file
// system's journal may hold writes not yet in place; it is replayed first
// (e2fsck -E journal_only), as the kernel replays it when it mounts the
// root, and nothing else is checked or repaired. (ostree itself freezes
// and thaws /boot after writing the boot configuration, so a bootloader
// that never replays the journal sees it too.)
func defaultEntry(t *testing.T, disk string) blsEntry {
	t.Helper()
	replayJournal(t, disk)
	var entries []blsEntry
	for _, line := range strings.Split(debugfs(t, disk, "ls -p /boot/loader/entries"), "\n") {
		f := strings.Split(line, "/")
		if len(f) < 6 || !strings.HasSuffix(f[5], ".conf") {
			continue
		}
		e := blsEntry{file: f[5]}
		for _, l := range strings.Split(debugfs(t, disk, "cat /boot/loader/entries/"+f[5]), "\n") {
			k, v, _ := strings.Cut(l, " ")
			v = strings.TrimSpace(v)
			switch k {
			case "title":
				e.title = v
			case "options":
				e.options = v
			case "linux":
				e.linux = v
			case "initrd":
				e.initrd = v
			case "version":
				e.version, _ = strconv.Atoi(v)
			}
		}
		entries = append(entries, e)
	}
	if len(entries) == 0 {
		t.Fatalf("the disk %s has no boot entries", disk)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].version > entries[j].version })
	return entries[0]
}

// entryFiles copies the kernel and the initrd the boot entry e names out
// of the disk, into a folder of the test's, and fails the test unless both
// are there with some content.
func entryFiles(t *testing.T, disk string, e blsEntry) (kernel, initrd string) {
	t.Helper()
	kdir := t.TempDir()
	kernel, initrd = filepath.Join(kdir, "vmlinuz"), filepath.Join(kdir, "initrd")
	debugfs(t, disk, fmt.Sprintf("dump %s %s", filepath.Join("/boot", e.linux), kernel))
	debugfs(t, disk, fmt.Sprintf("dump %s %s", filepath.Join("/boot", e.initrd), initrd))
	for _, f := range []string{kernel, initrd} {
		if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
			t.Fatalf("entry %s: %s could not be read from the disk", e.file, f)
		}
	}
	return kernel, initrd
}

// vmLogDir is where serial logs go: SEEDBUILD_VM_LOGS, or a folder under
// /var/tmp/seedbuild-vm-logs per run. They are kept after the run.
var (
	vmLogOnce sync.Once
	vmLogPath string
)

func vmLogDir(t *testing.T) string {
	vmLogOnce.Do(func() {
		vmLogPath = os.Getenv("SEEDBUILD_VM_LOGS")
		if vmLogPath == "" {
			vmLogPath = filepath.Join("/var/tmp/seedbuild-vm-logs", time.Now().Format("20060102-150405"))
		}
		os.MkdirAll(vmLogPath, 0o755)
	})
	return vmLogPath
}

// node is one VM: its disk and the share its stages run from.
type node struct {
	t     *testing.T
	name  string
	disk  string
	share string
	boots int
	// cutOn, when set, makes the next boot end in a power cut.
	cutOn string
	// snapshotDir, when set, is where the harness puts the copies of the
	// disk that a boot's stage asks for (see snapshotMarker).
	snapshotDir string
	// priority orders its boots among those waiting for a VM slot.
	priority bootPriority
	// writeLog, when set, has the next boots' disk writes logged there
	// (see qemuRun.writeLog); marked, when set, is told each snapshot
	// or mark a stage asks for (see snapshotMarker).
	writeLog string
	marked   func(name string)
}

// bootPriority orders the boots that wait for a VM slot: the highest gets
// the next free one, and boots of the same priority go in the order they
// asked. The chains that others do not wait on but that take longest go
// first, so that they do not end the run alone: the image tools' (a
// deploy boot of 8 to 13 minutes by two routes, then two boots), then the
// IBU chain's (four boots one after another); the power-cut copies'
// checks, which nothing waits on, last. (In a clean-clone run the tools'
// deploy started a third of the way through and the run ended on its last
// two boots, one VM running.)
type bootPriority int

const (
	leafBoot  bootPriority = -1 // nothing waits on it
	chainBoot bootPriority = 0  // other boots follow it (the default)
	ibuBoot   bootPriority = 1  // the IBU chain's
	toolsBoot bootPriority = 2  // the image tools' chain
	// seedBoot is the seed node's: every other chain waits on its seeds.
	// Its qemu also runs at a raised priority (seedNice) over the tests
	// that do not boot, which run beside it: at the same priority its boot
	// took 9m26s in a clean-clone run, against about 3 minutes alone.
	seedBoot bootPriority = 3
)

// seedNice is the nice value of a seedBoot's qemu.
const seedNice = -10

// powerCutMarker is the console line a stage prints to have the harness
// cut the power (see the cutAfter stage function).
const powerCutMarker = "seedbuild-vm-stage: POWER CUT NOW"

// snapshotMarker, followed by a name, is the console line a stage prints
// to have the harness copy the disk as a power cut at that moment would
// leave it: the VM is stopped (qemu completes and flushes its in-flight
// writes; what the guest holds in its page cache is not on the disk), the
// disk copied to NAME.raw in the node's snapshotDir, the VM continued, and
// the file snapped-NAME put in the share for the stage to wait on. A
// NAME that starts with markPrefix is only a mark: the VM is stopped and
// continued, the node told (node.marked), and no disk copied.
const snapshotMarker = "seedbuild-vm-stage: SNAPSHOT "

// markPrefix starts the name of a mark (see snapshotMarker).
const markPrefix = "mark-"

// markStage is a stage's lines that ask for the mark name and wait for it.
func markStage(name string) string { return snapshotStage(markPrefix + name) }

// snapshotStage is a stage's lines that ask for the snapshot name (see
// snapshotMarker) and wait until the harness has taken it.
func snapshotStage(name string) string {
	return fmt.Sprintf("echo \"%s%s\" >/dev/console\nuntil [ -e $X/snapped-%s ]; do sleep 0.2; done\n", snapshotMarker, name, name)
}

// bootUntilCut boots like boot, but the stage ends in a power cut where it
// prints powerCutMarker; the stage's rc is not read.
func (n *node) bootUntilCut(stage, script string) boot {
	n.cutOn = powerCutMarker
	return n.boot(stage, script)
}

func readString(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}

// newNode makes a share with the seedbuild binary in it, in a folder of
// the test's own.
func newNode(t *testing.T, name, disk string) *node {
	return newNodeIn(t, name, disk, t.TempDir())
}

// newNodeIn is newNode with the share in a given folder, for results that
// outlive the test.
func newNodeIn(t *testing.T, name, disk, share string) *node {
	if err := os.MkdirAll(share, 0o755); err != nil {
		t.Fatal(err)
	}
	linkOrCopy(t, bin, filepath.Join(share, "seedbuild"))
	return &node{t: t, name: name, disk: disk, share: share}
}

// put links or copies a host file into the share under rel.
func (n *node) put(src, rel string) {
	dst := filepath.Join(n.share, rel)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		n.t.Fatal(err)
	}
	linkOrCopy(n.t, src, dst)
}

func linkOrCopy(t *testing.T, src, dst string) {
	t.Helper()
	os.Remove(dst)
	if err := os.Link(src, dst); err == nil {
		return
	}
	sh(t, nil, "cp", "--sparse=always", "-p", src, dst)
}

// stagePreamble starts every stage script: strict shell, traced with the
// time of each command (so stage.log says where a boot's time went), and
// names for the share, the results folder and the binary.
const stagePreamble = `set -euxo pipefail
PS4='+ ${EPOCHREALTIME} '
X=/run/seedbuild-xfer
O=$X/out
SB=$X/seedbuild
export TMPDIR=/var/tmp
# await_output PID PATTERN: waits until $O/cut.log holds PATTERN; the
# stage fails if the process PID ends first.
await_output() {
  until grep -qF -- "$2" $O/cut.log; do
    if ! kill -0 "$1" 2>/dev/null; then echo "the command ended before $2"; cat $O/cut.log; exit 1; fi
    sleep 0.1
  done
}
# cut_after PATTERN SECONDS CMD...: runs CMD, and once its output holds
# PATTERN and SECONDS more have passed, has the harness cut the power.
cut_after() {
  local pattern=$1 delay=$2
  shift 2
  "$@" >$O/cut.log 2>&1 &
  await_output $! "$pattern"
  sleep "$delay"
  echo "` + powerCutMarker + `" >/dev/console
  sleep infinity
}
`

// boot is one boot of the node.
type boot struct {
	entry  blsEntry
	out    string // the stage's results folder
	serial string // the serial console log
	proof  string // the stage runner's line naming what booted
}

// file reads a result of the stage.
func (b boot) file(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(b.out, name))
	if err != nil {
		t.Fatalf("the stage wrote no %s: %v", name, err)
	}
	return strings.TrimSpace(string(data))
}

// boot boots the disk's default entry, verbatim, runs script in the node
// and waits for it to power off. It fails the test, with the stage's output
// and the serial log's tail, unless the stage exits 0.
func (n *node) boot(stage, script string) boot {
	t := n.t
	t.Helper()
	n.boots++
	e := defaultEntry(t, n.disk)
	kernel, initrd := entryFiles(t, n.disk, e)
	// Wait for a VM slot; the time the boot takes counts from here.
	running := vmSlots.acquire(n.priority)
	defer vmSlots.release()
	cpus := vmBootCPUs(n.priority, running, vmSlots)
	out := filepath.Join(n.share, "out")
	os.RemoveAll(out)
	if err := os.WriteFile(filepath.Join(n.share, "stage.sh"), []byte(stagePreamble+script), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(n.share, "stage.name"), []byte(stage+"\n"), 0o644)
	serial := filepath.Join(vmLogDir(t), fmt.Sprintf("%s-%s-%02d-%s.serial.log", t.Name(), n.name, n.boots, stage))
	serial = strings.ReplaceAll(serial, "/"+t.Name(), "/"+strings.ReplaceAll(t.Name(), "/", "_"))
	start := time.Now()
	nice := 0
	if n.priority == seedBoot {
		nice = seedNice
	}
	err := runQemu(qemuRun{disk: n.disk, share: n.share, kernel: kernel, initrd: initrd, options: e.options, serial: serial,
		cpus: cpus, nice: nice, limit: 20 * time.Minute, cutOn: n.cutOn, snapDir: n.snapshotDir, writeLog: n.writeLog, marked: n.marked})
	b := boot{entry: e, out: out, serial: serial, proof: proofLine(serial)}
	if n.cutOn != "" {
		n.cutOn = ""
		if err != nil || !strings.Contains(readString(serial), powerCutMarker) {
			stageLog, _ := os.ReadFile(filepath.Join(out, "stage.log"))
			t.Fatalf("boot %d of %s (%s): no power cut: qemu %v\n--- stage log (tail) ---\n%s\n--- serial log %s (tail) ---\n%s",
				n.boots, n.name, stage, err, tail(string(stageLog), 40), serial, tail(readString(serial), 40))
		}
		t.Logf("boot %d of %s (%s): entry %q, power cut after %s with %d vCPU; %s", n.boots, n.name, stage, e.title, time.Since(start).Round(time.Second), cpus, b.proof)
		return b
	}
	stageLog, _ := os.ReadFile(filepath.Join(out, "stage.log"))
	rc, rcErr := os.ReadFile(filepath.Join(out, "rc"))
	t.Logf("boot %d of %s (%s): entry %q (%s), %s with %d vCPU; %s", n.boots, n.name, stage, e.title, e.options, time.Since(start).Round(time.Second), cpus, b.proof)
	if err != nil || rcErr != nil || strings.TrimSpace(string(rc)) != "0" {
		serialData, _ := os.ReadFile(serial)
		t.Fatalf("boot %d of %s (%s): qemu: %v, stage rc %q\n--- stage log (tail) ---\n%s\n--- serial log %s (tail) ---\n%s",
			n.boots, n.name, stage, err, strings.TrimSpace(string(rc)), tail(string(stageLog), 60), serial, tail(string(serialData), 60))
	}
	return b
}

// vmSlots bounds how many VMs run at once: SEEDBUILD_VM_SLOTS, or 2. The
// booted-node tests run in parallel and their boots (short units) take
// slots in turn, so the host-side work of one test (disks, checks) overlaps
// another's boot. On a 2-core machine two TCG VMs each run at about half
// speed: the gain there is small (two boots with a native deploy side by
// side took 345 s, one alone about 200 s); on more cores it is larger.
var vmSlots = &slotPool{size: vmSlotCount()}

// slotPool hands out VM slots, a free one to the waiting boot of the
// highest priority.
type slotPool struct {
	mu      sync.Mutex
	size    int // how many VMs may run at once
	inUse   int
	waiting []*slotWait
}

type slotWait struct {
	priority bootPriority
	ready    chan struct{}
}

// acquire waits for a slot and returns how many are in use, its own
// included.
func (p *slotPool) acquire(priority bootPriority) int {
	p.mu.Lock()
	if p.inUse < p.size && len(p.waiting) == 0 {
		p.inUse++
		n := p.inUse
		p.mu.Unlock()
		return n
	}
	w := &slotWait{priority: priority, ready: make(chan struct{})}
	p.waiting = append(p.waiting, w)
	p.mu.Unlock()
	<-w.ready
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inUse
}

// release hands the slot to the first waiting boot of the highest
// priority, or frees it.
func (p *slotPool) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.waiting) == 0 {
		p.inUse--
		return
	}
	best := 0
	for i, w := range p.waiting {
		if w.priority > p.waiting[best].priority {
			best = i
		}
	}
	w := p.waiting[best]
	p.waiting = append(p.waiting[:best], p.waiting[best+1:]...)
	close(w.ready)
}

// vmCPUs is how many vCPUs a VM gets when running VMs (itself included)
// hold that many slots: SEEDBUILD_VM_CPUS, or the host's cores shared out
// among them, at least 1 and at most 4. Under TCG each vCPU is a host
// thread, and more vCPU threads than cores cost more than they give: a
// vCPU that spins on a guest lock whose holder's thread the host has
// descheduled wastes its time slice (nothing tells TCG, as paravirtual
// spinlocks tell KVM). Two VMs beside each other on 2 cores each took
// 345 s for a boot and a native deploy with 2 vCPUs, 276-293 s with 1.
//
// running is the slots in use when the VM boots, but a VM that boots into
// a free slot is soon joined by others: after the seed node, make test's
// chains keep both slots busy to the end. In two clean-clone runs the IBU
// chain's deploy boot started alone, took 2 vCPUs, and ran 7m46s and
// 8m20s beside a second VM, against 6m18s with 1 vCPU in another; so
// every boot is given the vCPUs of a full pool (vmBootCPUs), but the seed
// node's, which the others wait on and which runs alone.
func vmCPUs(running int) int {
	if n := envCount("SEEDBUILD_VM_CPUS"); n > 0 {
		return n
	}
	return min(4, max(1, runtime.NumCPU()/max(1, running)))
}

// vmBootCPUs is how many vCPUs a boot of the given priority gets while
// running VMs hold that many of pool's slots (see vmCPUs).
func vmBootCPUs(priority bootPriority, running int, pool *slotPool) int {
	if priority == seedBoot {
		return vmCPUs(running)
	}
	return vmCPUs(max(running, pool.size))
}

func vmSlotCount() int {
	if n := envCount("SEEDBUILD_VM_SLOTS"); n > 0 {
		return n
	}
	return 2
}

// envCount reads a count from the environment variable name: a number
// above 0, or 0 when it is unset or not such a number.
func envCount(name string) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return 0
}

// qemuRun is one run of qemu: the disk, the share, the kernel, initrd
// and command line it boots, where the serial console goes, its vCPUs,
// the nice value of its qemu and how long it may take.
type qemuRun struct {
	disk, share, kernel, initrd, options, serial string
	cpus, nice                                   int
	limit                                        time.Duration
	// cutOn, when set: qemu is killed (a power cut: what the guest had
	// not written to the disk is lost) as soon as the serial log holds
	// that line.
	cutOn string
	// snapDir, when set: the disk is copied into it where the stage asks
	// (see snapshotMarker), through qemu's monitor.
	snapDir string
	// writeLog, when set: the disk sits behind QEMU's blklogwrites driver,
	// which logs every write, flush and FUA the guest sends it, in order,
	// into this file (the dm-log-writes format, package
	// tests/internal/writelog). Its super block is brought up to date at
	// each flush (block/blklogwrites.c), and so at each snapshot or mark:
	// stopping the VM flushes its disks (vm_stop, bdrv_flush_all). That
	// flush is logged too, a flush point the guest did not ask for: the
	// disk as it was there is one a power cut could leave as well.
	writeLog string
	// marked, when set, is called with the name of each snapshot or
	// mark the stage asks for, while the VM is stopped.
	marked func(name string)
}

// runQemu boots r's kernel with its disk and share under software
// emulation (nested KVM hangs at kernel entry on these machines) and
// waits for the guest to power off, or for the power cut r asks for.
func runQemu(r qemuRun) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.limit)
	defer cancel()
	monitor := "none"
	var sock string
	snaps := r.snapDir != "" || r.marked != nil
	if snaps {
		dir, err := os.MkdirTemp("", "qmon")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		sock = filepath.Join(dir, "hmp")
		monitor = "unix:" + sock + ",server=on,wait=off"
	}
	// nice(1) execs qemu: every thread it makes has that priority.
	argv := append([]string{"-n", strconv.Itoa(r.nice), "qemu-system-x86_64"}, qemuArgs(r, monitor)...)
	cmd := exec.CommandContext(ctx, "nice", argv...)
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &errb
	if err := cmd.Start(); err != nil {
		return err
	}
	cut := make(chan bool, 1)
	snapErr := make(chan error, 1)
	if r.cutOn != "" || snaps {
		go func() {
			taken := map[string]bool{}
			for ctx.Err() == nil {
				log := readString(r.serial)
				if r.cutOn != "" && strings.Contains(log, r.cutOn) {
					cmd.Process.Kill()
					cut <- true
					return
				}
				var asked []string
				if snaps {
					asked = snapshotsAsked(log)
				}
				for _, name := range asked {
					if taken[name] {
						continue
					}
					taken[name] = true
					if err := snapshot(sock, r, name); err != nil {
						snapErr <- fmt.Errorf("the stage's snapshot %s: %w", name, err)
						cmd.Process.Kill()
						return
					}
					if err := os.WriteFile(filepath.Join(r.share, "snapped-"+name), nil, 0o644); err != nil {
						snapErr <- err
						cmd.Process.Kill()
						return
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	err := cmd.Wait()
	select {
	case <-cut:
		return nil
	case err := <-snapErr:
		return err
	default:
	}
	if ctx.Err() != nil {
		return fmt.Errorf("no power-off within %s", r.limit)
	}
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(errb.String()))
	}
	return nil
}

// snapshotsAsked returns the names the serial log's snapshotMarker lines
// ask for, in order.
func snapshotsAsked(log string) []string {
	var names []string
	for _, l := range strings.Split(log, "\n") {
		if _, rest, ok := strings.Cut(l, snapshotMarker); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				names = append(names, f[0])
			}
		}
	}
	return names
}

// snapshot stops the VM behind the monitor socket sock, copies its disk
// into r.snapDir as NAME.raw unless name is a mark, tells r.marked, and
// lets the VM go on.
func snapshot(sock string, r qemuRun, name string) error {
	if err := monitorCommand(sock, "stop"); err != nil {
		return err
	}
	var cpErr error
	if !strings.HasPrefix(name, markPrefix) && r.snapDir != "" {
		dst := filepath.Join(r.snapDir, name+".raw")
		if out, err := exec.Command("cp", "--sparse=always", r.disk, dst).CombinedOutput(); err != nil {
			cpErr = fmt.Errorf("cp %s %s: %v: %s", r.disk, dst, err, out)
		}
	}
	if r.marked != nil {
		r.marked(name)
	}
	if err := monitorCommand(sock, "cont"); err != nil {
		return err
	}
	return cpErr
}

// monitorCommand runs one command on qemu's human monitor at sock and
// waits for its next prompt. "stop" returns once the VM is paused and its
// in-flight disk writes are completed and flushed.
func monitorCommand(sock, command string) error {
	c, err := net.DialTimeout("unix", sock, 10*time.Second)
	if err != nil {
		return fmt.Errorf("qemu monitor: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	r := bufio.NewReader(c)
	prompt := func() error {
		var seen []byte
		for !bytes.HasSuffix(seen, []byte("(qemu) ")) {
			b, err := r.ReadByte()
			if err != nil {
				return fmt.Errorf("qemu monitor, %s: %w (read %q)", command, err, seen)
			}
			seen = append(seen, b)
		}
		return nil
	}
	if err := prompt(); err != nil {
		return err
	}
	if _, err := io.WriteString(c, command+"\n"); err != nil {
		return fmt.Errorf("qemu monitor, %s: %w", command, err)
	}
	return prompt()
}

// qemuArgs are qemu's arguments for one boot. The CPU model is qemu64, not
// max, measured on this 2-core machine, alone: a boot to the stage and
// back took 25 s against 31 s; the seed node's boot with its three creates
// 1m56s against 2m21s; that and a boot with a native deploy, 214 s against
// 252 s. (The likely cause: with max, glibc and Go pick AVX and SHA code
// paths, which TCG runs in helper calls.)
//
// The model has no CMPXCHG16B (-cx16). With it, a trixie guest (kernel
// 6.12, whose SLUB allocator runs cmpxchg16b on every allocation) died of
// a double fault under this qemu (7.2) in a clean-clone run: the fault's
// RIP was the instruction after a cmpxchg16b, and the saved EFLAGS held
// the low 32 bits of RAX (0xc26ac342 beside RAX ...c26ac300), flags no
// CPU can have: the emulator's flags for that instruction were wrong, not
// the guest. Without the feature the kernel takes its non-atomic paths
// (x86-64 baseline, as Debian builds it, does not require it).
//
// The disk is a virtio disk with a write cache: the guest's flushes reach
// qemu, which the write log needs, and what the guest wrote survives a
// kill of qemu in the host's page cache. They go no further than qemu
// (cache.no-flush, as cache=unsafe: the image file is never fdatasync'd):
// the host does not lose power in these tests, so a host flush adds
// nothing they can see, and each one waited on the host's disk, which the
// tests that do not boot keep busy beside the VMs. (QEMU's block/io.c
// bdrv_co_flush skips a node's flush to disk when it has no-flush, and
// still flushes its children: on the write log's blklogwrites node, which
// has not, every guest flush is still logged.)
func qemuArgs(r qemuRun, monitor string) []string {
	args := []string{
		"-accel", "tcg", "-cpu", "qemu64,-cx16", "-m", "3072", "-smp", strconv.Itoa(r.cpus),
		"-display", "none", "-monitor", monitor, "-serial", "file:" + r.serial, "-no-reboot",
		"-kernel", r.kernel, "-initrd", r.initrd, "-append", r.options,
		"-virtfs", "local,path=" + r.share + ",mount_tag=xfer,security_model=passthrough,id=xfer",
	}
	if r.writeLog == "" {
		return append(args, "-drive", "file="+r.disk+",format=raw,if=virtio,cache=unsafe")
	}
	// Without request-merging=off, virtio-blk merges the guest's adjacent
	// writes into one request of up to IOV_MAX (1024) pieces, and
	// blklogwrites, which writes each as its log entry's header and the
	// data in one vector of two pieces more, gets EINVAL from pwritev: the
	// guest saw I/O errors as soon as a stopped VM went on with a queue of
	// writes (block/blklogwrites.c, blk_log_writes_co_log; hw/block/
	// virtio-blk.c, virtio_blk_submit_multireq). The guest's own requests
	// have at most seg_max (queue size - 2, 254) pieces.
	return append(args,
		"-blockdev", "driver=file,node-name=disk,filename="+r.disk+",cache.no-flush=on",
		"-blockdev", "driver=file,node-name=log,filename="+r.writeLog+",cache.no-flush=on",
		"-blockdev", "driver=blklogwrites,node-name=logged,file=disk,log=log",
		"-device", "virtio-blk-pci,drive=logged,write-cache=on,request-merging=off")
}

// proofLine is the stage runner's console line that names the OS variant
// and the ostree= deployment that booted.
func proofLine(serial string) string {
	data, _ := os.ReadFile(serial)
	for _, l := range strings.Split(string(data), "\n") {
		if i := strings.Index(l, "seedbuild-vm-stage: running stage"); i >= 0 {
			return strings.TrimSpace(l[i:])
		}
	}
	return "(no stage line on the serial console)"
}

// TestVMBootCPUs checks the vCPUs a boot gets on this host: the cores
// shared out over a full pool, whatever is running when it boots, but for
// the seed node's boot, which gets them shared over the VMs running.
func TestVMBootCPUs(t *testing.T) {
	if os.Getenv("SEEDBUILD_VM_CPUS") != "" {
		t.Skip("SEEDBUILD_VM_CPUS sets every boot's vCPUs")
	}
	cores := runtime.NumCPU()
	for _, c := range []struct {
		name     string
		priority bootPriority
		running  int
		slots    int
		want     int
	}{
		{"a leaf alone in two slots", leafBoot, 1, 2, max(1, min(4, cores/2))},
		{"a chain beside another", chainBoot, 2, 2, max(1, min(4, cores/2))},
		{"the seed node alone", seedBoot, 1, 2, min(4, cores)},
		{"one slot", toolsBoot, 1, 1, min(4, cores)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := vmBootCPUs(c.priority, c.running, &slotPool{size: c.slots}); got != c.want {
				t.Errorf("vmBootCPUs(%d, %d running, %d slots) = %d on %d cores, want %d", c.priority, c.running, c.slots, got, cores, c.want)
			}
		})
	}
}

// TestSlotPoolServesHighestPriority: with the one slot taken, boots ask in
// the order given; each release hands the slot to the highest priority
// waiting, the first of equals first.
func TestSlotPoolServesHighestPriority(t *testing.T) {
	for _, tc := range []struct {
		name string
		asks []bootPriority
		want []int // the asks' indexes, in the order they get the slot
	}{
		{"one each", []bootPriority{leafBoot, chainBoot, ibuBoot}, []int{2, 1, 0}},
		{"equals in turn", []bootPriority{chainBoot, leafBoot, chainBoot, ibuBoot, leafBoot}, []int{3, 0, 2, 1, 4}},
		{"all the same", []bootPriority{leafBoot, leafBoot, leafBoot}, []int{0, 1, 2}},
		{"the tools' chain first", []bootPriority{chainBoot, ibuBoot, leafBoot, toolsBoot}, []int{3, 1, 0, 2}},
		{"the seed node before all", []bootPriority{toolsBoot, ibuBoot, seedBoot}, []int{2, 0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &slotPool{size: 1}
			if got := p.acquire(chainBoot); got != 1 {
				t.Fatalf("the first acquire says %d slots in use, want 1", got)
			}
			got := make(chan int, len(tc.asks))
			for i, prio := range tc.asks {
				go func() {
					p.acquire(prio)
					got <- i
				}()
				// The next one asks only once this one waits.
				for {
					p.mu.Lock()
					n := len(p.waiting)
					p.mu.Unlock()
					if n == i+1 {
						break
					}
					time.Sleep(time.Millisecond)
				}
			}
			var order []int
			for range tc.asks {
				p.release()
				order = append(order, <-got)
			}
			if fmt.Sprint(order) != fmt.Sprint(tc.want) {
				t.Errorf("served %v, want %v", order, tc.want)
			}
			p.release()
			if p.inUse != 0 {
				t.Errorf("after the last release: %d of %d in use, want 0", p.inUse, p.size)
			}
		})
	}
}
