package tests

// Power loss as the booted node's disk sees it: the power-cut test's one
// deploy on a booted node, its disk's writes and flushes logged from the
// boot on (qemuRun.writeLog), replayed to flush points of the deploy and
// each image checked on disk, then booted.

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/seedbuild/seedbuild/tests/internal/writelog"
)

// nodeRecording is a boot of n whose disk writes are logged, with the
// log's entry count at each mark or snapshot its stage asked for.
type nodeRecording struct {
	before, logFile string
	marks           map[string]int
}

// recordNextBoot has n's next boot log its disk's writes: it keeps a copy
// of the disk as it is now (what the log starts from) and the log's entry
// count at each snapshot and mark the boot's stage asks for.
func recordNextBoot(t *testing.T, n *node) *nodeRecording {
	t.Helper()
	dir := t.TempDir()
	r := &nodeRecording{before: filepath.Join(dir, "before.raw"), logFile: filepath.Join(dir, "w.log"), marks: map[string]int{}}
	// The boot replays the disk's journal before qemu starts (defaultEntry,
	// after a power cut such as the one during create): the copy is taken
	// after that replay, or it is not the disk the log starts from.
	replayJournal(t, n.disk)
	sh(t, nil, "cp", "--sparse=always", n.disk, r.before)
	// QEMU appends to the log file as it is.
	if err := os.WriteFile(r.logFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	n.writeLog = r.logFile
	n.marked = func(name string) { r.marks[strings.TrimPrefix(name, markPrefix)] = loggedEntries(t, r.logFile) }
	return r
}

// done ends the recording on n and opens its log as a flushRecording of
// the cuts' steps: the entry count at each cut held before a step.
func (r *nodeRecording) done(t *testing.T, n *node, cuts []powerCut) flushRecording {
	t.Helper()
	n.writeLog, n.marked = "", nil
	l, err := writelog.Open(r.logFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	steps, descs := map[int]int{}, map[int]string{}
	for _, c := range cuts {
		if at, ok := r.marks[c.name]; ok && c.hang > 0 {
			steps[c.hang], descs[c.hang] = at, c.name
		}
	}
	return flushRecording{before: r.before, log: l, steps: steps, descs: descs}
}

// bootedFlushImage is a flush point of the recorded deploy to replay: the
// disk as it was right after that flush, nothing written after it kept.
// wantWhole says what its default entry must be: "seed" (the new
// deployment, whole), "node" (the original) or "" (either).
type bootedFlushImage struct {
	flushImage
	wantWhole string
}

// bootedFlushImages picks the flush points of the deploy (between the
// marks deploy-start and deploy-end) to replay: the last one before the
// cut held before the default swap (before-default), where the original
// must boot; the first one once the swap's step is over (after-default),
// where the seed must; and random more of the deploy's, drawn by seed.
func bootedFlushImages(r flushRecording, marks map[string]int, random int, seed int64) ([]bootedFlushImage, error) {
	start, okS := marks["deploy-start"]
	end, okE := marks["deploy-end"]
	before, okB := marks["before-default"]
	after, okA := marks["after-default"]
	if !okS || !okE || !okB || !okA || !(start <= before && before <= after && after <= end) {
		return nil, fmt.Errorf("the marks %v lack deploy-start <= before-default <= after-default <= deploy-end", marks)
	}
	var points []int
	for _, p := range r.log.FlushPoints() {
		if p >= start && p < end {
			points = append(points, p)
		}
	}
	lastBefore, firstAfter := -1, -1
	for _, p := range points {
		if p < before {
			lastBefore = p
		}
		if p >= after && firstAfter < 0 {
			firstAfter = p
		}
	}
	if lastBefore < 0 || firstAfter < 0 {
		return nil, fmt.Errorf("no flush point before entry %d or none after entry %d among %d", before, after, len(points))
	}
	want := func(p int) string {
		switch {
		case p < before:
			return "node"
		case p >= after:
			return "seed"
		}
		return ""
	}
	pick := []int{lastBefore, firstAfter}
	rnd := rand.New(rand.NewSource(seed))
	for i := 0; i < random; i++ {
		pick = append(pick, points[rnd.Intn(len(points))])
	}
	slices.Sort(pick)
	pick = slices.Compact(pick)
	var out []bootedFlushImage
	for _, p := range pick {
		k := slices.Index(points, p)
		name := fmt.Sprintf("flush point %d of %d (entry %d, %s)", k+1, len(points), p, r.stepName(p))
		switch p {
		case lastBefore:
			name += ", the last before the default swap"
		case firstAfter:
			name += ", the first after the default swap's step"
		}
		out = append(out, bootedFlushImage{flushImage: flushImage{name: name, to: p + 1}, wantWhole: want(p)})
	}
	return out, nil
}

// checkBootedFlushImage checks a replayed image of the booted node's disk
// on the host: its default entry is the one wanted, the file system clean
// and the entry whole (checkCopyOnDisk); once mounted (the kernel replays
// the journal, as the node's would), no object named otherwise than by its
// content and ostree fsck clean. It returns what it found and the power cut
// the image stands for, for booting it.
func checkBootedFlushImage(t *testing.T, image string, im bootedFlushImage) (string, powerCut) {
	t.Helper()
	e := defaultEntry(t, image)
	c := powerCut{name: im.name, whole: strings.Contains(e.options, "/seed/")}
	if im.wantWhole != "" && c.whole != (im.wantWhole == "seed") {
		t.Errorf("%s: the default entry %s boots %q, want the %s deployment", im.name, e.file, e.options, im.wantWhole)
	}
	found := checkCopyOnDisk(t, image, c, "os-release")
	// What the next deploy must say it found: the journal's undo, or an
	// unpacked root a run left before it wrote its journal.
	// A temporary journal alone is a first write whose rename never
	// reached the disk: the run had changed nothing yet.
	c.left = undid
	if !journalEntry.MatchString(debugfs(t, image, "ls -p /ostree")) {
		c.left = unpackLeft
	}
	sys := filepath.Join(t.TempDir(), "sysroot")
	umount := mountLoop(t, image, sys)
	defer umount()
	repo := filepath.Join(sys, "ostree/repo")
	checkRepoSound(t, im.name, repo)
	return found, c
}

// journalEntry finds a deploy journal (not its temporary file) in the
// output of debugfs's ls -p, which ends each name with a slash.
var journalEntry = regexp.MustCompile(`/\.seedbuild-journal-[^/]*\.json/`)

// flushBootCount is how many random flush points of the booted deploy a
// run replays and boots beyond the two around the default swap:
// SEEDBUILD_FLUSH_ALL=1 (make crash) boots five more.
func flushBootCount() int {
	if flushAll() {
		return 5
	}
	return 0
}

// checkBootedFlushPoints replays the recorded deploy d to the flush points
// bootedFlushImages picks, checks each on disk and boots it: the original
// deployment, whose next deploy (d again) undoes what the power cut left,
// or the seed, whole, whose next deploy finishes the journal.
func checkBootedFlushPoints(t *testing.T, s seeds, d recordedDeploy, r flushRecording, marks map[string]int) {
	t.Helper()
	seed := flushSeed()
	images, err := bootedFlushImages(r, marks, flushBootCount(), seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the booted deploy's write log: %d entries, %d flush points in all (the boot's too); the deploy's from entry %d to %d; %d images to replay and boot (SEEDBUILD_FLUSH_SEED=%d)",
		len(r.log.Entries), len(r.log.FlushPoints()), marks["deploy-start"], marks["deploy-end"], len(images), seed)
	for i, im := range images {
		t.Run(fmt.Sprintf("flush-%d", i+1), func(t *testing.T) {
			t.Parallel()
			image := r.replay(t, im.flushImage)
			found, c := checkBootedFlushImage(t, image, im)
			// The short name names the boots and their logs.
			c.name = fmt.Sprintf("flush-%d", i+1)
			t.Logf("%s is %s: on disk, %s", c.name, im.name, found)
			cn := newNode(t, c.name, image)
			cn.priority = leafBoot
			cn.put(s.path(d.seed), d.share())
			switch {
			case c.whole && c.left == unpackLeft:
				// No journal: the deploy was over.
				b := cn.boot("after-"+c.name, seedStateStage)
				if !strings.Contains(b.entry.options, "/seed/") {
					t.Fatalf("%s (the deploy over) booted %q, want the seed's stateroot", c.name, b.entry.options)
				}
				checkSeedState(t, s, b, d.variant)
				t.Logf("%s: the deploy over; booted the seed, whole", c.name)
			case c.whole:
				checkWholeCopy(t, s, cn, c, d)
			default:
				checkCopy(t, cn, c, d)
			}
		})
	}
}

// swapCuts are the two cuts of powerCuts around the default swap: held
// before its step and before the next.
func swapCuts() []powerCut {
	var out []powerCut
	for _, c := range powerCuts {
		if c.name == "before-default" || c.name == "after-default" {
			out = append(out, c)
		}
	}
	return out
}

// swapStepLine is the deploy's output line that starts the default swap:
// step 10 on the node's ostree, as swapCuts hold it.
var swapStepLine = regexp.MustCompile(`(?m)^\[10/\d+\] make the whole deployment the default`)

// TestBootedClassicFlushPoints records the classic seed's deploy on a
// booted node, as TestBootedPowerCuts records the native seed's: the
// node's disk writes logged from the boot on, the deploy held and marked
// around the default swap (no copies), then the flush points
// bootedFlushImages picks (the two around the swap and five random ones)
// replayed, checked on disk and booted, each followed by the classic
// deploy again. It runs in make crash (SEEDBUILD_FLUSH_ALL=1); make test
// records the classic seed's deploy on the host (TestDeployFlushPoints).
func TestBootedClassicFlushPoints(t *testing.T) {
	if !flushAll() {
		t.Skip("make crash (SEEDBUILD_FLUSH_ALL=1) records the classic seed's deploy on a booted node; make test records it on the host (TestDeployFlushPoints/classic)")
	}
	t.Parallel()
	s := getSeeds(t)
	n := cutNode(t, s, classicRun)
	cuts := swapCuts()
	rec := recordNextBoot(t, n)
	b := n.boot("classic-recorded", statusStage+markStage("deploy-start")+pausedDeploy(classicRun, cuts, false)+markStage("deploy-end"))
	log := b.file(t, "cut.log")
	if rc := b.file(t, "deploy.rc"); rc != "0" {
		t.Fatalf("the classic seed's recorded deploy: exit %s\n%s", rc, tail(log, 20))
	}
	if !swapStepLine.MatchString(log) {
		t.Fatalf("the classic seed's deploy did not swap the default at step 10, where the marks were taken:\n%s", log)
	}
	checkBootedFlushPoints(t, s, classicRun, rec.done(t, n, cuts), rec.marks)
}

// TestBootedFlushImages checks which flush points of a recorded deploy are
// replayed and booted, on a log of writes (w) and flushes (f): the last
// before the swap's mark and the first at or after the mark that ends the
// swap's step, only those of the deploy, what each must boot, and the
// random ones the same for the same seed.
func TestBootedFlushImages(t *testing.T) {
	//            0123456789012345678
	const kinds = "wfwfwwffwfwfwfwfwfw"
	var entries []writelog.Entry
	for _, k := range kinds {
		if k == 'f' {
			entries = append(entries, writelog.Entry{Flags: writelog.FlagFlush})
		} else {
			entries = append(entries, writelog.Entry{Length: 512})
		}
	}
	r := flushRecording{log: &writelog.Log{Entries: entries}, steps: map[int]int{10: 8, 11: 13}}
	marks := map[string]int{"deploy-start": 2, "before-default": 8, "after-default": 13, "deploy-end": 18}
	for _, tc := range []struct {
		name   string
		marks  map[string]int
		random int
		want   []int // the entries of the flush points picked
		whole  []string
		err    bool
	}{
		{name: "around the swap", marks: marks, want: []int{6, 13}, whole: []string{"node", "seed"}},
		{name: "a flush at the mark is after it", marks: map[string]int{"deploy-start": 2, "before-default": 6, "after-default": 9, "deploy-end": 18}, want: []int{3, 9}, whole: []string{"node", "seed"}},
		{name: "no flush before the swap in the deploy", marks: map[string]int{"deploy-start": 4, "before-default": 5, "after-default": 13, "deploy-end": 18}, err: true},
		{name: "no flush after the swap's step", marks: map[string]int{"deploy-start": 2, "before-default": 8, "after-default": 18, "deploy-end": 18}, err: true},
		{name: "marks out of order", marks: map[string]int{"deploy-start": 2, "before-default": 13, "after-default": 8, "deploy-end": 18}, err: true},
		{name: "a mark missing", marks: map[string]int{"deploy-start": 2, "before-default": 8, "deploy-end": 18}, err: true},
		{name: "random ones within the deploy", marks: marks, random: 40, want: []int{3, 6, 9, 11, 13, 15, 17}, whole: []string{"node", "node", "", "", "seed", "seed", "seed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := bootedFlushImages(r, tc.marks, tc.random, 7)
			if tc.err {
				if err == nil {
					t.Fatalf("picked %v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var at []int
			var whole []string
			for _, im := range got {
				at = append(at, im.to-1)
				whole = append(whole, im.wantWhole)
			}
			if !slices.Equal(at, tc.want) || !slices.Equal(whole, tc.whole) {
				t.Errorf("picked entries %v wanting %q, want %v wanting %q", at, whole, tc.want, tc.whole)
			}
			again, _ := bootedFlushImages(r, tc.marks, tc.random, 7)
			if len(again) != len(got) {
				t.Errorf("the same seed picked %d, then %d", len(got), len(again))
			}
		})
	}
}

// TestJournalEntry checks what counts as a journal in debugfs's listing of
// /ostree: a journal, not its temporary file alone.
func TestJournalEntry(t *testing.T) {
	for _, c := range []struct {
		ls   string
		want bool
	}{
		{"/12/100600/0/0/.seedbuild-journal-seed.json/2048/\n", true},
		{"/13/100600/0/0/.seedbuild-journal-seed.json.tmp/2048/\n", false},
		{"/12/100600/0/0/.seedbuild-journal-seed.json/2048/\n/13/100600/0/0/.seedbuild-journal-seed.json.tmp/2048/\n", true},
		{"/2/40755/0/0/repo//\n", false},
	} {
		if got := journalEntry.MatchString(c.ls); got != c.want {
			t.Errorf("journalEntry in %q: %v, want %v", c.ls, got, c.want)
		}
	}
}
