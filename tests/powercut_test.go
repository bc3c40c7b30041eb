package tests

// Power cuts on booted nodes: qemu is killed while deploy or create runs,
// and the node must come back up into a working system, with the next run
// cleaning up what the cut left.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
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
	{name: "mid-unpack", pattern: "Unpacking layer 1 of", delay: "1", left: unpackLeft},
	{name: "mid-commit", pattern: "[3/", delay: "1"},
	{name: "mid-etc-apply", pattern: "[6/", delay: "0"},
	{name: "before-default", hang: 10, pattern: "[10/", delay: "0"},
	{name: "after-default", hang: 11, pattern: "[11/", delay: "0", whole: true},
}

// boundaryCuts are the cuts before each step up to the default swap that
// powerCuts leaves out: one before each step that no cut of powerCuts is
// held before and that writes something (readOnlySteps). After the swap (powerCuts' after-default) the node boots
// the new deployment, and the steps left only read it.
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

// readOnlySteps are the steps before the default swap that write nothing:
// a cut before one leaves the disk as the cut before the next step does.
var readOnlySteps = map[int]string{5: "find the new deployment: reads ostree admin status"}

// undid is what a deploy says once it has undone what a cut left.
const undid = "Undid an interrupted deploy into stateroot seed"

// unpackLeft is what a deploy says of an unpacked root a dead run left.
const unpackLeft = "left by an interrupted seedbuild run"

const statusStage = `
. /etc/os-release; echo "$VARIANT_ID" >$O/variant
ostree admin status >$O/status
ls /ostree/.seedbuild-journal-* >$O/journals 2>/dev/null || true
`

// nativeDeploy is the deploy the power-cut tests cut, in a stage.
const nativeDeploy = "$SB deploy oci-archive:$X/seeds/native.tar --stateroot seed --method ostree"

// stagesStage lists the unpacked roots deploys left on the sysroot.
const stagesStage = "ls -d /ostree/seedbuild-deploy-* >$O/stages 2>/dev/null || true\n"

// cutNode makes a target node with the native seed in its share.
func cutNode(t *testing.T, s seeds) *node {
	disk := makeNode(t, getNodeOS(t), func(etc, varDir string) { targetNodeState(t, etc, varDir) })
	n := newNode(t, "target", disk)
	n.put(s.path("native"), "seeds/native.tar")
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

// TestBootedPowerCuts cuts the power of a booted target during deploy, at
// the step boundaries around the default swap and half-way through the
// unpack, the commit and the /etc apply: one deploy, with the disk copied
// at each cut as the cut would leave it (deployWithCopies). Each copy
// boots the default entry: the original deployment, or, after the cut that
// came once the new one was whole and the default, the new one with all
// its state. Each next deploy says what the cut left and removes or
// finishes it.
func TestBootedPowerCuts(t *testing.T) {
	t.Parallel()
	// The seeds first: the seed node, which every booted test waits on,
	// then boots alone, with both vCPUs. (Booted beside this test's cut in
	// create, which needs no seed, it got one vCPU and took 5m22s.)
	s := getSeeds(t)
	n := cutNode(t, s)
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

	deployWithCopies(t, n, powerCuts)
	for _, c := range powerCuts {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cn := copyNode(t, s, n, c)
			if c.whole {
				checkWholeCopy(t, s, cn, c)
			} else {
				checkCopy(t, cn, c)
			}
		})
	}
}

// checkWholeCopy boots the copy of a disk taken at the cut c, which came
// once the new deployment was whole and the default: the node must boot
// the seed with all its state, and the next deploy finish the journal the
// cut left, then refuse the booted stateroot.
func checkWholeCopy(t *testing.T, s seeds, n *node, c powerCut) {
	t.Helper()
	b := n.boot("after-"+c.name, seedStateStage+statusStage+`
rc=0; `+nativeDeploy+` >$O/next.log 2>&1 || rc=$?; echo $rc >$O/next.rc
ostree admin status >$O/status-after
ls /ostree/.seedbuild-journal-* >$O/journals-after 2>/dev/null || true
`)
	if !strings.Contains(b.entry.options, "/seed/") {
		t.Fatalf("after the cut %s (the new deployment whole and the default) the node booted %q, want the seed's stateroot", c.name, b.entry.options)
	}
	checkSeedState(t, s, b, "seedbuild-vm-y")
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
	b := n.boot("deploy-copied-at-cuts", statusStage+pausedDeploy(cuts))
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
// the new deployment was whole and the default, and runs the deploy again,
// until it has dealt with what the cut left: the power is cut once it says
// it undid the dead run, or, after a cut in the unpack (which may leave
// nothing on disk), before its first step.
func checkCopy(t *testing.T, n *node, c powerCut) {
	t.Helper()
	next := fmt.Sprintf("cut_after %q 0 %s\n", undid, nativeDeploy)
	if c.left == unpackLeft {
		next = fmt.Sprintf("cut_after %q 0 env SEEDBUILD_INJECT_HANG=1 %s\n", "[1/", nativeDeploy)
	}
	b := n.bootUntilCut("after-"+c.name, statusStage+stagesStage+next)
	t.Log("power cut " + checkAfterCut(t, b, c))
}

// pausedDeploy is a stage that runs the native deploy once and, at each
// cut in turn (its pattern in the output, then its delay; a cut with a
// hang step holds the deploy before that step, SEEDBUILD_INJECT_PAUSE),
// has the harness copy the disk under the cut's name (snapshotMarker),
// then lets the deploy go on. The deploy's exit code goes to deploy.rc.
func pausedDeploy(cuts []powerCut) string {
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
	b.WriteString("env SEEDBUILD_INJECT_PAUSE=$P " + nativeDeploy + " >$O/cut.log 2>&1 &\npid=$!\n")
	for _, c := range cuts {
		fmt.Fprintf(&b, `await_output $pid %q
sleep %s
echo "%s%s" >/dev/console
until [ -e $X/snapped-%s ]; do sleep 0.2; done
`, c.pattern, c.delay, snapshotMarker, c.name, c.name)
		if c.hang > 0 {
			fmt.Fprintf(&b, "touch $P/%d\n", c.hang)
		}
	}
	b.WriteString("rc=0; wait $pid || rc=$?; echo $rc >$O/deploy.rc\n")
	return b.String()
}

// TestBootedPowerCutsAtBoundaries cuts the power at each step boundary up
// to the default swap that TestBootedPowerCuts does not cut at
// (boundaryCuts), all from one deploy: held before each of those steps,
// the VM is stopped and its disk copied, as a cut there would leave it,
// and the deploy goes on. That deploy must finish, and the node then boot
// the seed. Each copy is booted too: it must boot the original
// deployment, and its next deploy must undo what the cut left.
func TestBootedPowerCutsAtBoundaries(t *testing.T) {
	t.Parallel()
	s := getSeeds(t)
	n := cutNode(t, s)
	cuts := boundaryCuts()
	deployWithCopies(t, n, cuts)
	t.Run("seed", func(t *testing.T) {
		t.Parallel()
		n.t = t
		n.priority = leafBoot
		b := n.boot("seed", seedStateStage)
		if !strings.Contains(b.entry.options, "/seed/") {
			t.Fatalf("after the deploy copied at each boundary the node booted %q, want the seed's stateroot", b.entry.options)
		}
		checkSeedState(t, s, b, "seedbuild-vm-y")
		t.Log("the deploy copied at each boundary went on to the end; the node booted the seed, with its state")
	})
	for _, c := range cuts {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			checkCopy(t, copyNode(t, s, n, c), c)
		})
	}
}
