package tests

// Power cuts on booted nodes: qemu is killed while deploy or create runs,
// and the node must come back up into a working system, with the next run
// cleaning up what the cut left.

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// powerCut is one cut point of a deploy --method ostree of a native seed.
type powerCut struct {
	name string
	// hang, when > 0, holds the deploy before that step (a test-build
	// failpoint) so the cut falls on the step boundary.
	hang int
	// pattern and delay: the cut comes this long after the deploy's
	// output shows pattern.
	pattern string
	delay   string
	// whole says the new deployment was whole and the default before the
	// cut, so the node must boot it.
	whole bool
	// left is what the next deploy says it found and removed.
	left string
	// boot says its copy is booted on every run: the cuts whose outcome
	// differs from the rest (see cutsToBoot).
	boot bool
}

// The plan's steps on the node's ostree (2025.2, which has admin
// set-default; `deploy --dry-run` prints them): 2 lay the unpacked root
// out (the OS layers' /var moved into the stateroot: renames, over before
// a cut could fall inside), 3 commit (taking the files over), 4 deploy
// beside the default, 6 /etc apply, 9 move the /var layer (unpacked aside,
// beside the others and the commit) into the stateroot, 10 make it the
// default (set-default), 11 verify. The seed is unpacked onto the sysroot
// before step 1. (On an ostree without set-default, 10 deploys again as
// the default and 11 removes the spare: deployer's golden
// native-ostree-unpacked.json; the cuts fall on the same boundaries.)
var powerCuts = []powerCut{
	{name: "mid-unpack", pattern: unpackStart, delay: "1", left: unpackLeft, boot: true},
	{name: "mid-commit", pattern: "[3/", delay: "1"},
	{name: "mid-etc-apply", pattern: "[6/", delay: "0"},
	{name: "before-default", hang: 10, pattern: "[10/", delay: "0"},
	{name: "after-default", hang: 11, pattern: "[11/", delay: "0", whole: true},
}

// boundaryCuts are the cuts before each step up to the default swap that
// powerCuts leaves out: one before each step that no cut of powerCuts is
// held before and that writes something (readOnlySteps). After the swap
// (powerCuts' after-default) the node boots the new deployment, and the
// steps left only read it.
func boundaryCuts() []powerCut {
	held := map[int]bool{}
	last := 0
	for _, c := range powerCuts {
		held[c.hang] = true
		last = max(last, c.hang)
	}
	var out []powerCut
	for step := 1; step < last; step++ {
		if !held[step] && readOnlySteps[step] == "" {
			out = append(out, powerCut{name: fmt.Sprintf("before-step-%d", step), hang: step, pattern: fmt.Sprintf("[%d/", step), delay: "0"})
		}
	}
	return out
}

// allCuts are powerCuts and boundaryCuts in the order the deploy reaches
// them (cutOrder): one deploy is copied at all of them.
func allCuts() []powerCut {
	cuts := append(append([]powerCut{}, powerCuts...), boundaryCuts()...)
	sort.SliceStable(cuts, func(i, j int) bool { return cutOrder(cuts[i]) < cutOrder(cuts[j]) })
	return cuts
}

// cutOrder places a cut in the deploy's run: twice the step its pattern
// names, one more for a cut inside that step (not held before it), and 0
// for the unpack, which comes before step 1.
func cutOrder(c powerCut) int {
	step := 0
	if rest, ok := strings.CutPrefix(c.pattern, "["); ok {
		step, _ = strconv.Atoi(strings.TrimSuffix(rest, "/"))
	}
	if step > 0 && c.hang == 0 {
		return 2*step + 1
	}
	return 2 * step
}

// cutsToBoot picks the cuts whose copies are booted: with all, every one;
// else those marked boot (the unpack, which may leave nothing) and sample
// of the others, drawn with seed, in the deploy's order. Every copy is
// checked on disk (checkCopyOnDisk). Around the default swap, where the
// outcome changes, the disk as the last flush before the swap and the
// first after its step left it is booted instead (checkBootedFlushPoints):
// stricter than these copies, which keep what the guest had sent the disk
// without a flush.
func cutsToBoot(cuts []powerCut, all bool, seed int64, sample int) []powerCut {
	var out, rest []powerCut
	for _, c := range cuts {
		if all || c.boot {
			out = append(out, c)
		} else {
			rest = append(rest, c)
		}
	}
	r := rand.New(rand.NewSource(seed))
	r.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	out = append(out, rest[:min(sample, len(rest))]...)
	sort.SliceStable(out, func(i, j int) bool { return cutOrder(out[i]) < cutOrder(out[j]) })
	return out
}

// bootAllCuts is SEEDBUILD_BOOT_ALL_CUTS=1, as make crash sets it: every
// cut's copy booted, and the node after the deploy they were taken from.
func bootAllCuts() bool { return os.Getenv("SEEDBUILD_BOOT_ALL_CUTS") == "1" }

// cutSample is how many copies beyond the marked ones a run of make test
// boots: none. Every copy is checked on disk, and around the default swap
// the flush points' images, stricter, are booted instead; a sampled copy's
// boot cost the run about 80 s of a VM slot. make crash boots every copy.
const cutSample = 0

// bootedCutsOf reads the environment: SEEDBUILD_BOOT_ALL_CUTS=1 (make
// crash) boots every copy; SEEDBUILD_CUT_SEED=N draws the sample with N,
// as a failed run printed it, else a new seed is drawn.
func bootedCutsOf(t *testing.T, cuts []powerCut) map[string]bool {
	all := bootAllCuts()
	seed, err := strconv.ParseInt(os.Getenv("SEEDBUILD_CUT_SEED"), 10, 64)
	if err != nil {
		seed = time.Now().UnixNano() % 1000000
	}
	booted := map[string]bool{}
	var names []string
	for _, c := range cutsToBoot(cuts, all, seed, cutSample) {
		booted[c.name] = true
		names = append(names, c.name)
	}
	t.Logf("power cuts: %d copies, each checked on disk; booted: %s (SEEDBUILD_CUT_SEED=%d draws the same; SEEDBUILD_BOOT_ALL_CUTS=1, as make crash sets it, boots all)",
		len(cuts), strings.Join(names, ", "), seed)
	return booted
}

// readOnlySteps are the steps before the default swap that write nothing:
// a cut before one leaves the disk as the cut before the next step does.
var readOnlySteps = map[int]string{5: "find the new deployment: reads ostree admin status"}

// undid is what a deploy says once it has undone what a cut left.
const undid = "Undid an interrupted deploy into stateroot seed"

// unpackLeft is what a deploy says of an unpacked root a dead run left.
const unpackLeft = "left by an interrupted seedbuild run"

// unpackStart is what a deploy says as it starts to unpack the seed onto
// the sysroot.
const unpackStart = "Unpacking layer 1 of"

const statusStage = `
. /etc/os-release; echo "$VARIANT_ID" >$O/variant
ostree admin status >$O/status
ls /ostree/.seedbuild-journal-* >$O/journals 2>/dev/null || true
`

// recordedDeploy is a deploy the power-cut tests hold, cut and record on a
// booted node: the seed it deploys (its name in seeds and, as
// seeds/NAME.tar, in the node's share), the command a stage runs, the OS
// variant the node says once it boots the new deployment, and whether it
// unpacks the seed's layers onto the sysroot before its first step.
type recordedDeploy struct {
	seed, cmd, variant string
	unpacks            bool
}

func (d recordedDeploy) share() string { return "seeds/" + d.seed + ".tar" }

var (
	// nativeRun is the deploy the power-cut tests cut.
	nativeRun = recordedDeploy{"native", "$SB deploy oci-archive:$X/seeds/native.tar --stateroot seed --method ostree", "seedbuild-vm-y", true}
	// classicRun deploys the classic seed; its commit is the seed node's
	// own OS, X. On the node's ostree its plan's default swap is step 10 too
	// (TestBootedClassicFlushPoints checks the log says so).
	classicRun = recordedDeploy{"classic", "$SB deploy oci-archive:$X/seeds/classic.tar --stateroot seed", "seedbuild-vm-x", false}
)

// stagesStage lists the unpacked roots deploys left on the sysroot.
const stagesStage = "ls -d /ostree/seedbuild-deploy-* >$O/stages 2>/dev/null || true\n"

// cutNode makes a target node with d's seed in its share.
func cutNode(t *testing.T, s seeds, d recordedDeploy) *node {
	disk := makeNode(t, getNodeOS(t), func(etc, varDir string) { targetNodeState(t, etc, varDir) })
	n := newNode(t, "target", disk)
	n.put(s.path(d.seed), d.share())
	return n
}

// checkAfterCut checks a boot after the cut c, whose deploy's output is in
// cut.log: the node booted the original deployment, and the deploy said
// what the cut left. It returns the result, for the log.
func checkAfterCut(t *testing.T, b boot, c powerCut) string {
	t.Helper()
	left := c.left
	if left == "" {
		left = undid
	}
	if !strings.Contains(b.entry.options, "/node/") || b.file(t, "variant") != "seedbuild-vm-x" {
		t.Errorf("after the cut %s the node booted %q (%s), want the original deployment", c.name, b.entry.options, b.file(t, "variant"))
	}
	// A cut before the run's first fsync may leave nothing at all (the
	// unpacked root was never written back): then there is nothing to say.
	if left == unpackLeft && b.file(t, "stages") == "" {
		return fmt.Sprintf("%s: booted the original; the cut left nothing on disk to remove", c.name)
	}
	if log := b.file(t, "cut.log"); !strings.Contains(log, left) {
		t.Errorf("the deploy after the cut %s did not say %q:\n%s", c.name, left, tail(log, 20))
	}
	return fmt.Sprintf("%s: booted the original; the next deploy said %q", c.name, left)
}

// TestBootedPowerCuts cuts the power of a booted target during create,
// then during one deploy at every cut point (allCuts): each step boundary
// up to the default swap and half-way through the unpack, the commit and
// the /etc apply. The deploy is held at each, the VM stopped and its disk
// copied as a cut there would leave it (deployWithCopies), and the deploy
// goes on: it must finish (and, in make crash, the node then boot the
// seed). Every copy is checked on disk (checkCopyOnDisk: a clean file
// system whose default boot entry is whole and the right one), and some
// are booted (cutsToBoot): each boots the default entry, the original
// deployment or, after the cut that came once the new one was whole and
// the default, the new one with all its state; and its next deploy says
// what the cut left and removes or finishes it.
func TestBootedPowerCuts(t *testing.T) {
	t.Parallel()
	// The seeds first: the seed node, which every booted test waits on,
	// then boots alone, with both vCPUs. (Booted beside this test's cut in
	// create, which needs no seed, it got one vCPU and took 5m22s.)
	s := getSeeds(t)
	n := cutNode(t, s, nativeRun)
	n.put(getNodeOS(t).yArchive, "y.oci-archive")

	// First a cut while create --rootfs / writes a seed: nothing may be
	// left at the output's name. Enough data that the capture still runs.
	create := "$SB create --rootfs / --base oci-archive:$X/y.oci-archive -o oci-archive:$X/made/seed.tar"
	n.bootUntilCut("cut-create", "mkdir -p $X/made /var/lib/bulk\nhead -c 96M /dev/urandom >/var/lib/bulk/data.bin\ncut_after 'Capturing' 1 "+create+"\n")
	if _, err := os.Stat(filepath.Join(n.share, "made/seed.tar")); err == nil {
		t.Errorf("the power cut during create left made/seed.tar, which looks like a seed")
	}
	partials, _ := filepath.Glob(filepath.Join(n.share, "made/.seed.tar.partial-*"))
	t.Logf("power cut mid-create: nothing at made/seed.tar; the hidden partials %v are removed by the next copy to that name", partials)

	cuts := allCuts()
	rec := recordNextBoot(t, n)
	deployWithCopies(t, n, cuts)
	flushes := rec.done(t, n, cuts)
	booted := bootedCutsOf(t, cuts)
	t.Run("seed", func(t *testing.T) {
		if !bootAllCuts() {
			// The run's end state is booted in make test all the same: the
			// first flush point after the swap's step (flush, below) and
			// TestBootedIBU's seed, deployed the same way.
			t.Skip("make crash (SEEDBUILD_BOOT_ALL_CUTS=1) boots the node after the deploy copied at each cut; deploy.rc says it finished")
		}
		t.Parallel()
		n.t = t
		n.priority = leafBoot
		b := n.boot("seed", seedStateStage)
		if !strings.Contains(b.entry.options, "/seed/") {
			t.Fatalf("after the deploy copied at each cut the node booted %q, want the seed's stateroot", b.entry.options)
		}
		checkSeedState(t, s, b, "seedbuild-vm-y")
		t.Log("the deploy copied at each cut went on to the end; the node booted the seed, with its state")
	})
	t.Run("flush", func(t *testing.T) {
		t.Parallel()
		checkBootedFlushPoints(t, s, nativeRun, flushes, rec.marks)
	})
	for _, c := range cuts {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cn := copyNode(t, s, n, c)
			onDisk := checkCopyOnDisk(t, cn.disk, c, "os-release")
			switch {
			case !booted[c.name]:
				t.Logf("power cut %s: on disk, %s; not booted this run", c.name, onDisk)
			case c.whole:
				checkWholeCopy(t, s, cn, c, nativeRun)
			default:
				checkCopy(t, cn, c, nativeRun)
			}
		})
	}
}

// checkCopyOnDisk checks the copy of a disk taken at the cut c without
// booting it, as a bootloader and the kernel would find it: after the
// journal's replay the file system is clean (e2fsck -fn); the default boot
// entry is the original deployment's, or the seed's after a cut that came
// once the new one was whole and the default; its kernel and initrd are
// there, and its ostree= path leads to a deployment with an os-release and
// an /etc that holds etcFile. It says what it found, for the log.
func checkCopyOnDisk(t *testing.T, disk string, c powerCut, etcFile string) string {
	t.Helper()
	e := defaultEntry(t, disk)
	if out, err := exec.Command("e2fsck", "-fn", disk).CombinedOutput(); err != nil {
		t.Errorf("the copy at the cut %s: e2fsck -fn after the journal's replay: %v\n%s", c.name, err, tail(string(out), 20))
	}
	want := "/node/"
	if c.whole {
		want = "/seed/"
	}
	if !strings.Contains(e.options, want) {
		t.Errorf("the copy at the cut %s: the default entry %s boots %q, want a deployment under %s", c.name, e.file, e.options, want)
	}
	entryFiles(t, disk, e)
	var root string
	for _, f := range strings.Fields(e.options) {
		if v, ok := strings.CutPrefix(f, "ostree="); ok {
			root = v
		}
	}
	if root == "" || debugfs(t, disk, "cat "+root+"/usr/lib/os-release") == "" || !strings.Contains(debugfs(t, disk, "ls -p "+root+"/etc"), "/"+etcFile+"/") {
		t.Errorf("the copy at the cut %s: the entry's deployment %q has no usr/lib/os-release or no /etc/%s", c.name, root, etcFile)
	}
	return fmt.Sprintf("the file system clean, the default entry %s whole (%s)", e.title, root)
}

// checkWholeCopy boots the copy of a disk taken at the cut c, which came
// once the new deployment was whole and the default: the node must boot
// the seed with all its state, and the next deploy finish the journal the
// cut left, then refuse the booted stateroot.
func checkWholeCopy(t *testing.T, s seeds, n *node, c powerCut, d recordedDeploy) {
	t.Helper()
	b := n.boot("after-"+c.name, seedStateStage+statusStage+`
rc=0; `+d.cmd+` >$O/next.log 2>&1 || rc=$?; echo $rc >$O/next.rc
ostree admin status >$O/status-after
ls /ostree/.seedbuild-journal-* >$O/journals-after 2>/dev/null || true
`)
	if !strings.Contains(b.entry.options, "/seed/") {
		t.Fatalf("after the cut %s (the new deployment whole and the default) the node booted %q, want the seed's stateroot", c.name, b.entry.options)
	}
	checkSeedState(t, s, b, d.variant)
	if got := b.file(t, "journals"); got == "" {
		t.Errorf("the cut %s left no journal to finish", c.name)
	}
	next := b.file(t, "next.log")
	if b.file(t, "next.rc") != "1" || !strings.Contains(next, "Finished an interrupted deploy into stateroot seed") || !strings.Contains(next, "booted") {
		t.Errorf("the deploy after the cut %s, booted into the seed: exit %s\n%s\nwant it to finish the journal, then refuse the booted stateroot", c.name, b.file(t, "next.rc"), next)
	}
	if st := b.file(t, "status-after"); strings.Count(st, " seed ") != 1 || b.file(t, "journals-after") != "" {
		t.Errorf("after finishing: status\n%s\njournals %q; want one deployment of seed and no journal", st, b.file(t, "journals-after"))
	}
	t.Logf("power cut %s: booted the seed, whole; the next deploy finished the journal", c.name)
}

// deployWithCopies runs the native deploy on n once, with a copy of the
// disk taken at each cut as the cut would leave it (pausedDeploy, into
// n.snapshotDir), and checks that the deploy then went on to the end.
func deployWithCopies(t *testing.T, n *node, cuts []powerCut) {
	t.Helper()
	n.snapshotDir = t.TempDir()
	b := n.boot("deploy-copied-at-cuts", statusStage+markStage("deploy-start")+pausedDeploy(nativeRun, cuts, true)+markStage("deploy-end"))
	if rc := b.file(t, "deploy.rc"); rc != "0" {
		t.Fatalf("the deploy copied at each cut: exit %s\n%s", rc, tail(b.file(t, "cut.log"), 20))
	}
}

// copyNode is a node on the copy of n's disk taken at the cut c, with the
// native seed in its share.
func copyNode(t *testing.T, s seeds, n *node, c powerCut) *node {
	cn := newNode(t, "after-"+c.name, filepath.Join(n.snapshotDir, c.name+".raw"))
	cn.priority = leafBoot
	cn.put(s.path("native"), "seeds/native.tar")
	t.Cleanup(func() { os.Remove(cn.disk) })
	return cn
}

// checkCopy boots the copy of a disk taken at the cut c, which came before
// the new deployment was whole and the default, and runs the deploy d
// again, until it has dealt with what the cut left: the power is cut once
// it says it undid the dead run or, after a cut before the run wrote its
// journal (in the unpack, which may leave nothing on disk), once it has
// removed what a dead run left (deployer's Deploy removes stale scratch
// folders first): as it starts its own unpack, or held before its first
// step.
func checkCopy(t *testing.T, n *node, c powerCut, d recordedDeploy) {
	t.Helper()
	next := fmt.Sprintf("cut_after %q 0 %s\n", undid, d.cmd)
	switch {
	case c.left == unpackLeft && d.unpacks:
		next = fmt.Sprintf("cut_after %q 0 %s\n", unpackStart, d.cmd)
	case c.left == unpackLeft:
		next = fmt.Sprintf("cut_after %q 0 env SEEDBUILD_INJECT_HANG=1 %s\n", "[1/", d.cmd)
	}
	b := n.bootUntilCut("after-"+c.name, statusStage+stagesStage+next)
	t.Log("power cut " + checkAfterCut(t, b, c))
}

// pausedDeploy is a stage that runs the deploy d once and, at each cut in
// turn (its pattern in the output, then its delay; a cut with a hang step
// holds the deploy before that step, SEEDBUILD_INJECT_PAUSE), has the
// harness copy the disk under the cut's name (snapshotStage) or, when
// copyDisk is false, only mark the place under it (markStage), then lets
// the deploy go on. The deploy's exit code goes to deploy.rc.
func pausedDeploy(d recordedDeploy, cuts []powerCut, copyDisk bool) string {
	held := map[int]bool{}
	for _, c := range cuts {
		if c.hang > 0 {
			held[c.hang] = true
		}
	}
	var free []string
	for step := 1; step <= 40; step++ {
		if !held[step] {
			free = append(free, strconv.Itoa(step))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "P=/run/seedbuild-pause\nmkdir -p $P\n(cd $P && touch %s)\n", strings.Join(free, " "))
	b.WriteString("env SEEDBUILD_INJECT_PAUSE=$P " + d.cmd + " >$O/cut.log 2>&1 &\npid=$!\n")
	for _, c := range cuts {
		fmt.Fprintf(&b, "await_output $pid %q\nsleep %s\n", c.pattern, c.delay)
		if copyDisk {
			b.WriteString(snapshotStage(c.name))
		} else {
			b.WriteString(markStage(c.name))
		}
		if c.hang > 0 {
			fmt.Fprintf(&b, "touch $P/%d\n", c.hang)
		}
	}
	b.WriteString("rc=0; wait $pid || rc=$?; echo $rc >$O/deploy.rc\n")
	return b.String()
}

// TestPowerCutPlan checks the cut points one deploy is copied at: in the
// deploy's order (pausedDeploy waits for each in turn), each name once,
// every step up to the default swap that writes held before exactly once;
// and the copies booted: every marked one, a sample of the rest the same
// for the same seed, all when asked.
func TestPowerCutPlan(t *testing.T) {
	cuts := allCuts()
	held, names, marked := map[int]int{}, map[string]bool{}, 0
	for i, c := range cuts {
		if i > 0 && cutOrder(c) < cutOrder(cuts[i-1]) {
			t.Errorf("cut %s comes after %s in the list but before it in the deploy", c.name, cuts[i-1].name)
		}
		if names[c.name] {
			t.Errorf("cut %s twice", c.name)
		}
		names[c.name] = true
		if c.hang > 0 {
			held[c.hang]++
		}
		if c.boot {
			marked++
		}
	}
	for step := 1; step <= 11; step++ {
		if want := map[bool]int{true: 0, false: 1}[readOnlySteps[step] != ""]; held[step] != want {
			t.Errorf("step %d: held before %d times, want %d", step, held[step], want)
		}
	}
	picks := map[string]bool{}
	for _, tc := range []struct {
		name         string
		all          bool
		seed         int64
		sample, want int
	}{
		{"all", true, 1, cutSample, len(cuts)},
		{"make test's", false, 1, cutSample, marked + cutSample},
		{"seed 1", false, 1, 1, marked + 1},
		{"seed 2", false, 2, 1, marked + 1},
		{"seed 3", false, 3, 1, marked + 1},
		{"seed 4", false, 4, 1, marked + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := cutsToBoot(cuts, tc.all, tc.seed, tc.sample)
			again := cutsToBoot(cuts, tc.all, tc.seed, tc.sample)
			var key []string
			in := map[string]bool{}
			for i, c := range got {
				key = append(key, c.name)
				in[c.name] = true
				if again[i].name != c.name {
					t.Errorf("seed %d drew %s, then %s", tc.seed, c.name, again[i].name)
				}
			}
			if len(got) != tc.want || len(in) != tc.want {
				t.Errorf("booted %v, want %d distinct", key, tc.want)
			}
			for _, c := range cuts {
				if c.boot && !in[c.name] {
					t.Errorf("booted %v, without the marked %s", key, c.name)
				}
			}
			if !tc.all && tc.sample > 0 {
				picks[strings.Join(key, ",")] = true
			}
		})
	}
	if len(picks) < 2 {
		t.Errorf("four seeds drew the same sample: %v", picks)
	}
}
