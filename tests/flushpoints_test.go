package tests

// Power loss as a disk sees it, on the host: a deploy into a sysroot whose
// file system is on a disk that logs every write and flush, in order
// (QEMU's blklogwrites driver, exported by qemu-storage-daemon as a FUSE
// file, under a loop device), then the disk remade as it was at each flush
// point (package tests/internal/writelog), with nothing written after it,
// or with a random part of what came after it, and each image checked as
// a node would find it after a power cut there.
//
// The loop device has a write cache and no FUA (drivers/block/loop.c): a
// flush, or a FUA write, from ext4 becomes an fsync of the FUSE file,
// which qemu-storage-daemon turns into a flush of the disk, logged once
// every write before it is on the disk (block/export/fuse.c fuse_fsync;
// block/blklogwrites.c). What a power cut can lose is what was written
// after the last flush: the replay keeps none of it, or a seeded random
// part of it.

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seedbuild/seedbuild/internal/ostreerepo"
	"github.com/seedbuild/seedbuild/tests/internal/writelog"
)

// flushRecording is a deploy recorded on a logging disk.
type flushRecording struct {
	// before is the disk as it was when the log started.
	before string
	log    *writelog.Log
	// steps holds, for each step of the deploy that started (1 on), how
	// many entries the log had then; descs, what the step does.
	steps map[int]int
	descs map[int]string
}

// stepOf is the step of the deploy that was running when entry i was
// logged (0 before the first).
func (r flushRecording) stepOf(i int) int {
	step := 0
	for s, at := range r.steps {
		if at <= i && s > step {
			step = s
		}
	}
	return step
}

// stepName says where entry i falls: "step N", or before the first step
// the recording knows of (a booted recording knows only the steps its
// marks were taken at).
func (r flushRecording) stepName(i int) string {
	if s := r.stepOf(i); s > 0 {
		return fmt.Sprintf("step %d", s)
	}
	first := 1
	if len(r.steps) > 0 {
		first = slices.Min(slices.Collect(maps.Keys(r.steps)))
	}
	return fmt.Sprintf("before step %d", first)
}

// mountLoop mounts the file system in the image file at dir, through a
// loop device, until the test ends or the returned func is called.
func mountLoop(t *testing.T, image, dir string) func() {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sh(t, nil, "mount", "-o", "loop", image, dir)
	done := false
	umount := func() {
		if !done {
			done = true
			if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v\n%s", dir, err, out)
			}
		}
	}
	t.Cleanup(umount)
	return umount
}

// recordDeploy makes an ext4 file system in a sparse disk image, lays a
// sysroot out in it with prepare, and records what deploy (given the
// mounted sysroot) writes to it, from that point on.
func recordDeploy(t *testing.T, prepare func(sys string), deploy func(sys string) []string) flushRecording {
	t.Helper()
	for _, tool := range []string{"qemu-storage-daemon", "losetup", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (make test installs qemu-system-x86, mount and e2fsprogs)", tool)
		}
	}
	dir := t.TempDir()
	disk, before, logFile, export := filepath.Join(dir, "disk.raw"), filepath.Join(dir, "before.raw"), filepath.Join(dir, "w.log"), filepath.Join(dir, "export.raw")
	sys := filepath.Join(dir, "sysroot")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Create(disk)
	must(err)
	must(f.Truncate(3 << 30))
	must(f.Close())
	sh(t, nil, "mkfs.ext4", "-q", "-F", disk)
	umount := mountLoop(t, disk, sys)
	sh(t, nil, "ostree", "admin", "init-fs", "--modern", sys)
	prepare(sys)
	umount()
	sh(t, nil, "cp", "--sparse=always", disk, before)
	// QEMU appends to the log file as it is: an empty one, and the super
	// block brought up to date at every entry.
	must(os.WriteFile(logFile, nil, 0o644))
	must(os.WriteFile(export, nil, 0o644))
	pidFile := filepath.Join(dir, "qsd.pid")
	sh(t, nil, "qemu-storage-daemon",
		"--blockdev", "driver=file,node-name=disk,filename="+disk,
		"--blockdev", "driver=file,node-name=log,filename="+logFile,
		"--blockdev", "driver=blklogwrites,node-name=logged,file=disk,log=log,log-super-update-interval=1",
		"--export", "type=fuse,id=export,node-name=logged,mountpoint="+export+",writable=on",
		"--pidfile", pidFile, "--daemonize")
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		pid, err := os.ReadFile(pidFile)
		n, _ := strconv.Atoi(strings.TrimSpace(string(pid)))
		if err != nil || n <= 0 {
			t.Errorf("qemu-storage-daemon's pid: %q, %v", pid, err)
			return
		}
		// It flushes the disk and the log, and unmounts the export, as
		// it closes.
		syscall.Kill(n, syscall.SIGTERM)
		for i := 0; i < 300 && syscall.Kill(n, 0) == nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Cleanup(stop)
	umount = mountLoop(t, export, sys)
	steps, descs := map[int]int{}, map[int]string{}
	cmd := exec.Command(bin, deploy(sys)...)
	stderr, err := cmd.StderrPipe()
	must(err)
	var out strings.Builder
	cmd.Stdout = &out
	must(cmd.Start())
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if n, desc, ok := stepStarted(line); ok {
			steps[n], descs[n] = loggedEntries(t, logFile), desc
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the recorded deploy: %v\n%s", err, tail(out.String(), 20))
	}
	umount()
	stop()
	l, err := writelog.Open(logFile)
	must(err)
	t.Cleanup(func() { l.Close() })
	return flushRecording{before: before, log: l, steps: steps, descs: descs}
}

// stepStarted reads "[n/m] what" off a deploy's output line.
func stepStarted(line string) (int, string, bool) {
	rest, ok := strings.CutPrefix(line, "[")
	if !ok {
		return 0, "", false
	}
	n, m, ok := strings.Cut(rest, "/")
	_, desc, found := strings.Cut(m, "] ")
	if !ok || !found || strings.HasPrefix(desc, "done in") {
		return 0, "", false
	}
	v, err := strconv.Atoi(n)
	return v, desc, err == nil
}

// loggedEntries is the write log's entry count as its super block says it
// now (with log-super-update-interval=1, every entry logged so far).
func loggedEntries(t *testing.T, logFile string) int {
	t.Helper()
	f, err := os.Open(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var n [8]byte
	if _, err := f.ReadAt(n[:], 16); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return int(binary.LittleEndian.Uint64(n[:]))
}

// flushImage is one disk image to check: the log replayed up to entry to
// (not included), the entries keep says of it.
type flushImage struct {
	name string
	to   int
	keep func(i int) bool
}

// replay writes the image: the disk before the log, with the entries
// replayed.
func (r flushRecording) replay(t *testing.T, im flushImage) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "image.raw")
	sh(t, nil, "cp", "--sparse=always", r.before, p)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := r.log.Apply(f, 0, im.to, im.keep); err != nil {
		t.Fatal(err)
	}
	return p
}

// objectsNamedByContent lists the objects of the repo whose content does
// not give their name: a file renamed into objects/ whose data a power cut
// lost, say. ostree fsck reads only what a commit names; this reads every
// object there.
func objectsNamedByContent(t *testing.T, repo string) []string {
	t.Helper()
	var bad []string
	objects := filepath.Join(repo, "objects")
	err := filepath.WalkDir(objects, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(objects, p)
		name, kind, _ := strings.Cut(strings.ReplaceAll(rel, "/", ""), ".")
		var sum [32]byte
		switch kind {
		case "file":
			sum, err = ostreerepo.ChecksumFile(p)
		case "dirtree", "dirmeta", "commit":
			var data []byte
			data, err = os.ReadFile(p)
			sum = sha256.Sum256(data)
		default:
			return nil
		}
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", rel, err))
		} else if hex.EncodeToString(sum[:]) != name {
			bad = append(bad, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("reading the objects of %s: %v", repo, err)
	}
	return bad
}

// checkRepoSound checks the repo of a replayed image: every object in it
// named by its content, and ostree fsck clean.
func checkRepoSound(t *testing.T, name, repo string) {
	t.Helper()
	if bad := objectsNamedByContent(t, repo); len(bad) > 0 {
		t.Errorf("%s: objects not named by their content: %v", name, bad)
	}
	if out, err := exec.Command("ostree", "fsck", "--quiet", "--repo="+repo).CombinedOutput(); err != nil {
		t.Errorf("%s: ostree fsck: %v\n%s", name, err, tail(string(out), 10))
	}
}

// checkFlushImage checks a replayed image as a node would find it after a
// power cut, and deals with it as the node's next deploy would: the file
// system clean once its journal is replayed; the default boot entry the
// original deployment (under /node/) or the whole new one (/seed/), its
// kernel, initrd and tree there; no object named otherwise than by its
// content; ostree fsck clean; the next deploy (next, on the mounted
// sysroot) finishing, with one deployment of seed and the node's kept,
// and ostree fsck clean again. It says what it found.
func checkFlushImage(t *testing.T, image string, im flushImage, next func(sys string) result) string {
	t.Helper()
	e := defaultEntry(t, image)
	whole := strings.Contains(e.options, "/seed/")
	// The sample root's /etc (hack/mkroot.py) has chrony.conf, the
	// node's and the seed's.
	found := checkCopyOnDisk(t, image, powerCut{name: im.name, whole: whole}, "chrony.conf")
	sys := filepath.Join(t.TempDir(), "sysroot")
	umount := mountLoop(t, image, sys)
	defer umount()
	repo := filepath.Join(sys, "ostree/repo")
	checkRepoSound(t, im.name, repo)
	r := next(sys)
	said := "nothing to undo"
	for _, s := range []string{"Undid an interrupted deploy", "Finished an interrupted deploy"} {
		if strings.Contains(r.stderr, s) {
			said = s
		}
	}
	// Where the new deployment was whole (or the next deploy finished
	// it), the stateroot is there: the deploy refuses to replace it.
	refused := r.code == 1 && strings.Contains(r.stderr, `stateroot "seed" exists`)
	if r.code != 0 && !(refused && (whole || said == "Finished an interrupted deploy")) {
		t.Errorf("%s: the next deploy: %s", im.name, r)
	}
	st := sh(t, nil, "ostree", "admin", "status", "--sysroot="+sys)
	if strings.Count(st, " seed ") != 1 || strings.Count(st, " node ") != 1 {
		t.Errorf("%s: after the next deploy, status is\n%s\nwant one deployment of seed and the node's", im.name, st)
	}
	if out, err := exec.Command("ostree", "fsck", "--quiet", "--repo="+repo).CombinedOutput(); err != nil {
		t.Errorf("%s: ostree fsck after the next deploy: %v\n%s", im.name, err, tail(string(out), 10))
	}
	// Nor a journal, nor a temporary one a cut in its first write left.
	if left, _ := filepath.Glob(filepath.Join(sys, "ostree", ".seedbuild-journal-*")); len(left) != 0 {
		t.Errorf("%s: after the next deploy the sysroot still holds %v", im.name, left)
	}
	return fmt.Sprintf("%s; the next deploy: %s", found, said)
}

// flushImages picks the images to check: every flush point with all,
// else three of the default swap's step (swapStep: its first, last and
// one between) and spread more spread over the log; and after partial
// flush points drawn by seed, a part of the writes that followed.
func flushImages(r flushRecording, swapStep int, all bool, spread, partial int, seed int64) []flushImage {
	points := r.log.FlushPoints()
	var pick, swap []int
	for k, p := range points {
		if all {
			pick = append(pick, k)
		} else if r.stepOf(p) == swapStep {
			swap = append(swap, k)
		}
	}
	if len(swap) > 0 {
		// The first and last of the swap's step, and one between.
		pick = append(pick, swap[0], swap[len(swap)/2], swap[len(swap)-1])
	}
	for i := 1; !all && i <= spread; i++ {
		pick = append(pick, i*len(points)/(spread+1))
	}
	slices.Sort(pick)
	pick = slices.Compact(pick)
	var out []flushImage
	for _, k := range pick {
		p := points[k]
		out = append(out, flushImage{name: fmt.Sprintf("flush point %d (entry %d, %s)", k, p, r.stepName(p)), to: p + 1})
	}
	rnd := rand.New(rand.NewSource(seed))
	for i := 0; i < partial && len(points) > 0; i++ {
		k := rnd.Intn(len(points))
		from, to, err := r.log.Between(k)
		if err != nil || to == from {
			continue
		}
		kept := map[int]bool{}
		for j := from; j < to; j++ {
			kept[j] = rnd.Intn(2) == 0
		}
		out = append(out, flushImage{name: fmt.Sprintf("flush point %d and %d of the %d entries after it (seed %d)", k, countTrue(kept), to-from, seed), to: to,
			keep: func(j int) bool { return j < from || kept[j] }})
	}
	return out
}

func countTrue(m map[int]bool) int {
	n := 0
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}

// TestDeployFlushPoints records a deploy by the ostree method of a native
// seed, and one of a classic seed (the upstream agent's layout, which
// deploys only from its ostree.tgz), each into a
// sysroot that holds a node's stateroot, on a logging disk, and checks the
// disk at its flush points (a sample; SEEDBUILD_FLUSH_ALL=1, make crash,
// checks every one) and with part of the writes after some.
func TestDeployFlushPoints(t *testing.T) {
	f := getFixtures(t)
	st := newStore(t)
	native := filepath.Join(t.TempDir(), "seed.tar")
	mustSeedbuild(t, st.flags("create", "-q", "--rootfs", f.root, "--base", "oci-archive:"+f.base, "--output", "oci-archive:"+native)...)
	seedN := flushSeed()
	t.Logf("the partial images are drawn by SEEDBUILD_FLUSH_SEED=%d", seedN)
	for _, c := range []struct {
		name, seed string
		method     []string
		// spread and partial: how many images spread over the log, and
		// how many with part of the writes after a flush (see
		// flushImages), in make test.
		spread, partial int
	}{
		{"native", native, []string{"--method", "ostree"}, 3, 2},
		// The classic seed's deploy is the same plan on a pulled commit:
		// the default swap's images and one more.
		{"classic", f.classic, nil, 1, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			deploy := func(sys string) []string {
				return st.flags(append([]string{"deploy", "oci-archive:" + c.seed, "--stateroot", "seed", "--sysroot", sys}, c.method...)...)
			}
			rec := recordDeploy(t, func(sys string) {
				mustSeedbuild(t, st.flags("deploy", "oci-archive:"+f.bootc, "--stateroot", "node", "--sysroot", sys, "--method", "ostree", "-q")...)
			}, deploy)
			points := rec.log.FlushPoints()
			if len(points) < 5 || len(rec.steps) < 10 {
				t.Fatalf("the deploy's log: %d entries, %d flush points, steps seen %v", len(rec.log.Entries), len(points), rec.steps)
			}
			perStep := map[int]int{}
			for _, p := range points {
				perStep[rec.stepOf(p)]++
			}
			t.Logf("the deploy: %d log entries, %d flush points; by step (0: before step 1): %v", len(rec.log.Entries), len(points), perStep)
			images := flushImages(rec, swapStepOf(t, rec), flushAll(), c.spread, c.partial, seedN)
			for _, im := range images {
				image := rec.replay(t, im)
				found := checkFlushImage(t, image, im, func(sys string) result { return seedbuild(t, nil, deploy(sys)...) })
				t.Logf("%s: %s", im.name, found)
				os.Remove(image)
			}
			t.Logf("%d images checked", len(images))
		})
	}
}

// flushAll is SEEDBUILD_FLUSH_ALL=1, as make crash sets it: every flush
// point of the host's recordings checked, more of the booted one's booted.
func flushAll() bool { return os.Getenv("SEEDBUILD_FLUSH_ALL") == "1" }

// flushSeed is SEEDBUILD_FLUSH_SEED, as a run printed it, or a new draw:
// what draws the partial and random flush images.
func flushSeed() int64 {
	if v, err := strconv.ParseInt(os.Getenv("SEEDBUILD_FLUSH_SEED"), 10, 64); err == nil {
		return v
	}
	return time.Now().UnixNano() % 1000
}

// swapStepOf is the step that makes the new deployment the default, by
// its description.
func swapStepOf(t *testing.T, r flushRecording) int {
	t.Helper()
	for n, d := range r.descs {
		if strings.HasPrefix(d, "make the whole deployment the default") {
			return n
		}
	}
	t.Fatalf("no step of the recorded deploy makes the new deployment the default: %v", r.descs)
	return 0
}

// TestFlushRecordingStepName checks where a log entry is said to fall: in
// the step last started before it, or before the first step the recording
// knows of.
func TestFlushRecordingStepName(t *testing.T) {
	booted := flushRecording{steps: map[int]int{10: 8, 11: 13}}
	host := flushRecording{steps: map[int]int{1: 2, 2: 5, 3: 9}}
	for _, c := range []struct {
		name string
		r    flushRecording
		at   int
		want string
	}{
		{"before the marks", booted, 3, "before step 10"},
		{"at a mark", booted, 8, "step 10"},
		{"after the last", booted, 20, "step 11"},
		{"before step 1", host, 1, "before step 1"},
		{"within step 2", host, 7, "step 2"},
		{"no steps", flushRecording{}, 4, "before step 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.r.stepName(c.at); got != c.want {
				t.Errorf("stepName(%d) = %q, want %q", c.at, got, c.want)
			}
		})
	}
}
