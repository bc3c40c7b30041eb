package tests

// Booted image-based upgrade: seeds made from a live / on a booted node,
// deployed on a booted target, and booted. Boot is the proof.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// seedNodeFiles are seed-node files whose content the seed must carry to
// the target, with where they live on the node.
var seedNodeFiles = []string{"etc/kubernetes/kubelet.conf", "var/lib/etcd/member/snap/db"}

// seeds are the seeds made on the booted seed node, one per layout.
type seeds struct {
	dir string
	// sums are the sha256 of seedNodeFiles on the seed node, in order.
	sums []string
	// labels are the SELinux labels of the seed node's /etc and /var.
	labels map[string]string
	// origin is the seed node's booted deployment's .origin, trimmed.
	origin string
	// state is the seed node's /etc and /var when its seeds were made
	// (stateDump).
	state map[string]pathState
}

func (s seeds) path(layout string) string { return filepath.Join(s.dir, layout+".tar") }

var (
	seedsOnce sync.Once
	seedsVal  seeds
)

// setDefault is a stage shell function that makes a stateroot's newest
// deployment the default through libostree, as `ostree admin set-default`
// and `rpm-ostree rollback` do (Debian's ostree 2022.7 has neither).
const setDefault = `
set_default() {
python3 - "$1" <<'PY'
import sys, gi
gi.require_version("OSTree", "1.0")
from gi.repository import OSTree
s = OSTree.Sysroot.new_default()
s.load(None)
ds = s.get_deployments()
pick = [d for d in ds if d.get_osname() == sys.argv[1]]
if not pick:
    sys.exit("no deployment of stateroot %s" % sys.argv[1])
s.write_deployments([pick[0]] + [d for d in ds if not d.equal(pick[0])], None)
PY
}
`

// unlabelledBase names the native seed the seed node makes on the node
// OS's unlabelled base (nodeOS.yuArchive).
const unlabelledBase = "native-unlabelled-base"

// getSeeds boots the seed node once per run and creates a seed of each
// layout from its live /.
func getSeeds(t *testing.T) seeds {
	t.Helper()
	seedsOnce.Do(func() { seedsVal = makeSeeds(t) })
	if seedsVal.dir == "" {
		t.Fatal("the seed node did not produce seeds (see the first test that asked for them)")
	}
	return seedsVal
}

// seedNodeStage runs on the booted seed node.
var seedNodeStage = seedNodeLabelStage + bootedOrigin + `cp $O/origin $O/seed-origin
systemctl is-active kubelet.service
pgrep -x kubelet
cp /var/lib/kubelet-standin/started $O/kubelet-started
# The live-node guard, for real: refused while the stand-in kubelet runs.
rc=0
$SB create --rootfs / --base oci-archive:$X/y.oci-archive -o oci-archive:/var/tmp/refused.tar -q 2>$O/refused.err || rc=$?
echo $rc >$O/refused.rc
test ! -e /var/tmp/refused.tar
# As the upstream agent stops kubelet and crio before it captures.
systemctl stop kubelet.service
` + stateDump("state-seed-node") + `
mkdir -p $X/seeds
for layout in native bootc-tarball; do
  start=$(date +%s)
  $SB create --rootfs / --layout $layout --base oci-archive:$X/y.oci-archive -o oci-archive:$X/seeds/$layout.tar --json -q >$O/create-$layout.json
  echo "$layout $(( $(date +%s) - start ))" >>$O/create-seconds
  $SB inspect --json oci-archive:$X/seeds/$layout.tar >$O/inspect-$layout.json
done
# The same node on a base whose layers carry no labels (its policy labels
# the deploy's commit), which a deploy has to apply in order: its /var
# layer's labels differ from the base's /var.
start=$(date +%s)
$SB create --rootfs / --base oci-archive:$X/yu.oci-archive -o oci-archive:$X/seeds/` + unlabelledBase + `.tar --json -q >$O/create-` + unlabelledBase + `.json
echo "` + unlabelledBase + ` $(( $(date +%s) - start ))" >>$O/create-seconds
# The classic seed comes from seedbuild's own image run with the node's
# podman, as the README tells users to: the node's ostree makes its repo.
` + inImage + `
start=$(date +%s)
$SBC create --layout classic -o oci-archive:/host$X/seeds/classic.tar --json -q >$O/create-classic.json
echo "classic-in-image $(( $(date +%s) - start ))" >>$O/create-seconds
$SBC inspect --json oci-archive:/host$X/seeds/classic.tar >$O/inspect-classic.json
`

// bootedOrigin is a stage fragment: it copies the booted deployment's
// .origin (beside the folder the kernel's ostree= link names) to origin.
const bootedOrigin = `
for a in $(cat /proc/cmdline); do
  case $a in ostree=*) cp "$(readlink -f "${a#ostree=}").origin" $O/origin ;; esac
done
`

// inImage is a stage fragment: it loads seedbuild's image into the node's
// podman and defines SBC, seedbuild run in it on this node (--host-root),
// with the flags the README gives. It records in image-tools which of the
// host tools the image itself has (none: what runs is the node's).
const inImage = `
id=$(podman pull -q oci-archive:$X/seedbuild-image.tar)
podman tag $id ` + seedbuildImageName + `
podman run --rm --net=none --entrypoint /bin/sh ` + seedbuildImageName + ` -c 'for t in ostree rpm-ostree bootc podman; do command -v $t || true; done' >$O/image-tools
SBC="podman run --rm --privileged --pid=host --net=host -v /:/host ` + seedbuildImageName + ` --host-root /host"
`

// checkImageTools fails unless the stage's image-tools says seedbuild's
// image has none of the host tools: whatever ostree ran was the node's.
func checkImageTools(t *testing.T, b boot) {
	t.Helper()
	if got := b.file(t, "image-tools"); got != "" {
		t.Errorf("seedbuild's image has host tools of its own: %q", got)
	}
}

func makeSeeds(t *testing.T) seeds {
	osImg := getNodeOS(t)
	mk := filepath.Join(t.TempDir(), "mkroot")
	sh(t, nil, "python3", hackScript("mkroot.py"), "--out", mk, "--scale", "0.02")
	var sums []string
	for _, f := range seedNodeFiles {
		sums = append(sums, fileSHA(t, filepath.Join(mk, f)))
	}
	disk := makeNode(t, osImg, func(etc, varDir string) { seedNodeState(t, mk, etc, varDir) })
	// The seeds outlive this test: every booted scenario deploys them.
	n := newNodeIn(t, "seed", disk, filepath.Join(work, "vm-seed-node"))
	n.priority = seedBoot // every boot after it waits on its seeds
	n.put(osImg.yArchive, "y.oci-archive")
	n.put(osImg.yuArchive, "yu.oci-archive")
	n.put(seedbuildImage(t), "seedbuild-image.tar")
	start := time.Now()
	b := n.boot("create", seedNodeStage)
	checkImageTools(t, b)
	t.Logf("seed node: booted and created its seeds in %s; create took (s): %s", time.Since(start).Round(time.Second), strings.ReplaceAll(b.file(t, "create-seconds"), "\n", ", "))
	if got := b.file(t, "getenforce"); got != "Permissive" {
		t.Errorf("getenforce on the seed node: %q, want Permissive", got)
	}
	nodeLabels := readLabelDump(t, b, "labels-seed-node")
	for _, seed := range []string{"native", unlabelledBase} {
		checkCaptureLabels(t, filepath.Join(n.share, "seeds", seed+".tar"), nodeLabels)
	}
	if rc := b.file(t, "refused.rc"); rc != "1" || !strings.Contains(b.file(t, "refused.err"), "--allow-running") {
		t.Errorf("create --rootfs / with the stand-in kubelet running: exit %s, %s; want exit 1 naming --allow-running", rc, b.file(t, "refused.err"))
	}
	for _, layout := range []string{"native", "bootc-tarball", "classic"} {
		var d struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal([]byte(b.file(t, "inspect-"+layout+".json")), &d); err != nil || d.Kind != layout {
			t.Errorf("inspect of the %s seed made on the node: kind %q (%v)", layout, d.Kind, err)
		}
	}
	return seeds{dir: filepath.Join(n.share, "seeds"), sums: sums, labels: nodeLabels, origin: b.file(t, "seed-origin"),
		state: readStateDump(t, b, "state-seed-node")}
}

// seedNodeState lays an OpenShift-like state onto the seed node before its
// first boot: mkroot.py's /etc changes (with its MachineConfig and
// kernelArguments) and /var data, a deleted default, and a stand-in kubelet.
func seedNodeState(t *testing.T, mk, etc, varDir string) {
	sh(t, nil, "cp", "-a", mk+"/etc/.", etc+"/")
	sh(t, nil, "cp", "-a", mk+"/var/.", varDir+"/")
	// Junk where the node's own storage and journal live would only get in
	// the way of the node's real ones.
	for _, p := range []string{"lib/containers", "log/journal"} {
		os.RemoveAll(filepath.Join(varDir, p))
	}
	if err := os.Remove(filepath.Join(etc, "issue.net")); err != nil {
		t.Fatal(err)
	}
	addMachineConfigKargs(t, filepath.Join(etc, "machine-config-daemon/currentconfig"), selinuxKargs)
	writeFilesMode(t, etc, map[string]string{"kubernetes/standin/kubelet": kubeletStandin}, 0o755)
	writeFiles(t, etc, map[string]string{"systemd/system/kubelet.service": kubeletUnit})
	os.MkdirAll(filepath.Join(etc, "systemd/system/multi-user.target.wants"), 0o755)
	if err := os.Symlink("../kubelet.service", filepath.Join(etc, "systemd/system/multi-user.target.wants/kubelet.service")); err != nil {
		t.Fatal(err)
	}
}

// kubeletStandin stands in for kubelet on the VM nodes: it reads the
// node's kubelet config and /var data, records that it started, and stays
// up as a process named kubelet.
const kubeletStandin = `#!/bin/sh
# Stand-in for kubelet (seedbuild's VM tests only).
set -e
sums=$(sha256sum /etc/kubernetes/kubelet.conf /var/lib/etcd/member/snap/db | cut -d' ' -f1 | tr '\n' ' ')
mkdir -p /var/lib/kubelet-standin
echo "$(cat /proc/sys/kernel/random/boot_id) $sums" >>/var/lib/kubelet-standin/started
while :; do sleep 3600; done
`

const kubeletUnit = `[Unit]
Description=Stand-in for kubelet (seedbuild VM tests only)

[Service]
ExecStart=/etc/kubernetes/standin/kubelet

[Install]
WantedBy=multi-user.target
`

// targetNodeState is the target's own, smaller state.
func targetNodeState(t *testing.T, etc, varDir string) {
	writeFiles(t, etc, map[string]string{"target-node.conf": "the target's own\n"})
	writeFiles(t, varDir, map[string]string{"lib/target-data/data.txt": "target data\n"})
}

// checkSeedState reads what a boot of a seed's stateroot wrote and checks
// the seed node's state is there and the stand-in kubelet started on it.
var seedStateStage = bootedOrigin + `
cat /proc/cmdline >$O/cmdline
. /etc/os-release; echo "$VARIANT_ID" >$O/variant
ostree admin status >$O/status
systemctl is-active kubelet.service >$O/kubelet-active || true
tail -n1 /var/lib/kubelet-standin/started >$O/kubelet-last
cat /proc/sys/kernel/random/boot_id >$O/boot-id
sha256sum /etc/kubernetes/kubelet.conf /var/lib/etcd/member/snap/db | cut -d' ' -f1 >$O/sums
if [ -e /etc/issue.net ]; then echo present; else echo absent; fi >$O/issue.net
if [ -e /etc/target-node.conf ]; then echo present; else echo absent; fi >$O/target-conf
` + stateDump("state")

func checkSeedState(t *testing.T, s seeds, b boot, variant string) {
	t.Helper()
	if got := b.file(t, "variant"); got != variant {
		t.Errorf("booted OS variant = %q, want %q", got, variant)
	}
	if got, want := strings.Fields(b.file(t, "sums")), s.sums; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("seed node files %v on the booted seed: sums %v, want %v", seedNodeFiles, got, want)
	}
	// Every route gives the new deployment the seed node's origin, as the
	// upstream agent does: rpm-ostree and the MCO read it.
	if got := b.file(t, "origin"); got != s.origin {
		t.Errorf("the booted seed stateroot's origin = %q, want the seed node's %q", got, s.origin)
	}
	if got := b.file(t, "kubelet-active"); got != "active" {
		t.Errorf("the stand-in kubelet is %q on the booted seed, want active", got)
	}
	last := strings.Fields(b.file(t, "kubelet-last"))
	if len(last) != 3 || last[0] != b.file(t, "boot-id") || last[1] != s.sums[0] || last[2] != s.sums[1] {
		t.Errorf("the stand-in kubelet's last start %q: want this boot (%s) on the seed's files %v", last, b.file(t, "boot-id"), s.sums)
	}
	if got := b.file(t, "issue.net"); got != "absent" {
		t.Errorf("/etc/issue.net, deleted on the seed node, is %s on the booted seed", got)
	}
	if got := b.file(t, "target-conf"); got != "absent" {
		t.Errorf("the target's own /etc/target-node.conf is %s in the seed's stateroot", got)
	}
	n := checkFullState(t, s.state, readStateDump(t, b, "state"))
	t.Logf("full comparison: %d paths of the seed node's /etc and /var compared on the booted seed (%d exceptions listed)", n, len(stateExceptions))
}

// wantCmdline checks the booted kernel's command line holds each karg.
func wantCmdline(t *testing.T, cmdline string, kargs ...string) {
	t.Helper()
	have := map[string]bool{}
	for _, f := range strings.Fields(cmdline) {
		have[f] = true
	}
	for _, k := range kargs {
		if !have[k] {
			t.Errorf("/proc/cmdline %q lacks %s", cmdline, k)
		}
	}
}

// seedKargs are mkroot.py's MachineConfig kernelArguments, the SELinux
// ones the harness adds to it and the ibu= karg of its OCP version.
var seedKargs = append([]string{"systemd.unified_cgroup_hierarchy=1", `cgroup_no_v1="all"`, "psi=0", "rcupdate.rcu_normal_after_boot=0", "ibu=4.20.0"}, selinuxKargs...)

// addMachineConfigKargs adds kernel arguments to a MachineConfig daemon's
// currentconfig.
func addMachineConfigKargs(t *testing.T, file string, kargs []string) {
	t.Helper()
	var mc map[string]any
	data, err := os.ReadFile(file)
	if err == nil {
		err = json.Unmarshal(data, &mc)
	}
	if err != nil {
		t.Fatalf("reading %s: %v", file, err)
	}
	spec, _ := mc["spec"].(map[string]any)
	if spec == nil {
		t.Fatalf("%s has no spec", file)
	}
	have, _ := spec["kernelArguments"].([]any)
	for _, k := range kargs {
		have = append(have, k)
	}
	spec["kernelArguments"] = have
	if data, err = json.Marshal(mc); err == nil {
		err = os.WriteFile(file, data, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}

const deployStage = avcStage + `
ostree admin status >$O/status-before
$SB facts --json >$O/facts.json
rc=0; $SB inspect --against $O/facts.json oci-archive:$X/seeds/native.tar >$O/against.txt 2>&1 || rc=$?; echo $rc >$O/against.rc
# Refusals on the booted host.
rc=0; $SB deploy oci-archive:$X/seeds/native.tar --stateroot node -q 2>$O/refuse-booted.err || rc=$?; echo $rc >$O/refuse-booted.rc
rc=0; $SB deploy oci-archive:$X/seeds/native.tar --stateroot node --force -q 2>$O/refuse-force.err || rc=$?; echo $rc >$O/refuse-force.rc
ostree admin status >$O/status-after-refusals
$SB deploy oci-archive:$X/seeds/native.tar --stateroot seed --dry-run --json >$O/dry-run.json
stat -f -c '%a %S' /sysroot >$O/df-root
stat -f -c '%a %S' /boot >$O/df-boot
start=$(date +%s)
$SB deploy oci-archive:$X/seeds/native.tar --stateroot seed --method ostree 2>&1 | tee $O/deploy.log
echo $(( $(date +%s) - start )) >$O/deploy-seconds
ostree admin status >$O/status-after
`

// TestBootedIBU is the full image-based upgrade on booted nodes with the
// ostree method, then the first-boot unit on a plain ostree deploy of the
// seed's commit, then a rollback to the target's original deployment.
func TestBootedIBU(t *testing.T) {
	t.Parallel()
	s := getSeeds(t)
	disk := makeNode(t, getNodeOS(t), func(etc, varDir string) { targetNodeState(t, etc, varDir) })
	n := newNode(t, "target", disk)
	n.priority = ibuBoot
	// The seed on the unlabelled base: the deploy labels its commit by the
	// image's policy and applies the layers in order (the path a trixie
	// node was reported to crash on), and the SELinux checks of the boot
	// below run on what that made.
	n.put(s.path(unlabelledBase), "seeds/native.tar")

	b := n.boot("deploy", deployStage)
	original := b
	t.Logf("deploy --method ostree on the booted target took %ss", b.file(t, "deploy-seconds"))
	if !strings.Contains(b.file(t, "deploy.log"), inOrderAgain) {
		t.Errorf("the deploy of the seed on the unlabelled base did not apply its layers in order:\n%s", tail(b.file(t, "deploy.log"), 20))
	}
	if rc := b.file(t, "against.rc"); rc != "0" {
		t.Errorf("inspect --against the target's facts: exit %s: %s", rc, b.file(t, "against.txt"))
	}
	for _, r := range []string{"refuse-booted", "refuse-force"} {
		if rc, msg := b.file(t, r+".rc"), b.file(t, r+".err"); rc != "1" || !strings.Contains(msg, "booted") {
			t.Errorf("%s: deploy into the booted stateroot: exit %s, %q; want exit 1 naming the booted stateroot", r, rc, msg)
		}
	}
	if before, after := b.file(t, "status-before"), b.file(t, "status-after-refusals"); before != after {
		t.Errorf("refused deploys changed the deployments:\nbefore %s\nafter %s", before, after)
	}
	checkSpaceFacts(t, b)
	if !strings.Contains(b.file(t, "status-after"), "seed") {
		t.Fatalf("ostree admin status after deploy lists no seed stateroot:\n%s", b.file(t, "status-after"))
	}

	b = n.boot("seed", seedStateStage+selinuxStage+setDefault+`
test -e /etc/.seedbuild-etc-applied
systemctl show -p ConditionResult seedbuild-apply-etc.service >$O/apply-etc
# As a bootc switch would: the seed's commit deployed with plain ostree, so
# seedbuild lays no /etc state and the first-boot unit must.
ostree admin os-init fb
ostree admin deploy --os=fb --karg-proc-cmdline seedbuild/seed
`)
	if !strings.Contains(b.entry.options, "/seed/") {
		t.Errorf("the default entry after deploy is %q, want the seed stateroot's", b.entry.options)
	}
	checkSeedState(t, s, b, "seedbuild-vm-y")
	wantCmdline(t, b.file(t, "cmdline"), append(append([]string{}, seedKargs...), nodeKargs...)...)
	checkSELinuxBoot(t, s, b, original)
	if st := b.file(t, "status"); !strings.Contains(st, "node ") {
		t.Errorf("ostree admin status on the booted seed no longer lists the target's deployment:\n%s", st)
	}
	if got := b.file(t, "apply-etc"); got != "ConditionResult=no" {
		t.Errorf("seedbuild-apply-etc on a seedbuild deploy: %s, want skipped (ConditionResult=no)", got)
	}

	firstBoot := `
# The unit runs beside this stage (it is ordered before kubelet only).
while [ "$(systemctl show -p ActiveState --value seedbuild-apply-etc.service)" = activating ]; do sleep 0.2; done
systemctl show -p ConditionResult -p ActiveState -p Result seedbuild-apply-etc.service | sort | tr '\n' ' ' >$O/apply-etc
stat -c %Y /etc/.seedbuild-etc-applied >$O/stamp
sha256sum /etc/kubernetes/kubelet.conf | cut -d' ' -f1 >$O/etc-sum
if [ -e /etc/issue.net ]; then echo present; else echo absent; fi >$O/issue.net
. /etc/selinux/config
setfiles -n -v /etc/selinux/$SELINUXTYPE/contexts/files/file_contexts /etc >$O/setfiles-etc 2>&1
`
	// Started again, as at a second boot, the unit is skipped by its stamp
	// (its ConditionPathExists=!, evaluated at each start), and the stamp
	// stays as the first start left it.
	b = n.boot("first-boot", firstBoot+`
systemctl restart seedbuild-apply-etc.service
systemctl show -p ConditionResult seedbuild-apply-etc.service >$O/apply-etc-again
stat -c %Y /etc/.seedbuild-etc-applied >$O/stamp-again
`+setDefault+`
set_default node
`)
	if !strings.Contains(b.entry.options, "/fb/") {
		t.Fatalf("the default entry is %q, want the fb stateroot's", b.entry.options)
	}
	if got := b.file(t, "apply-etc"); got != "ActiveState=active ConditionResult=yes Result=success" {
		t.Errorf("seedbuild-apply-etc on first boot: %s, want it to have run", got)
	}
	checkFirstBootState(t, s, b)
	// The unit copied the seed's /etc from /usr, whose commit labelled it
	// as /usr: it relabels what it copied as /etc.
	if m := relabelLine.FindAllString(b.file(t, "setfiles-etc"), -1); len(m) > 0 {
		t.Errorf("after the first-boot unit, setfiles -n would relabel %d file(s) of /etc:\n%s", len(m), strings.Join(head(m, 20), "\n"))
	}
	if got := b.file(t, "apply-etc-again"); got != "ConditionResult=no" {
		t.Errorf("seedbuild-apply-etc started again: %s, want skipped by its stamp", got)
	}
	if got, first := b.file(t, "stamp-again"), b.file(t, "stamp"); got != first {
		t.Errorf("the stamp changed when the unit started again: %s, was %s", got, first)
	}

	b = n.boot("rollback", `
. /etc/os-release; echo "$VARIANT_ID" >$O/variant
cat /etc/target-node.conf >$O/target-conf
cat /var/lib/target-data/data.txt >$O/target-data
ostree admin status >$O/status
`)
	if !strings.Contains(b.entry.options, "/node/") {
		t.Errorf("the default entry after the rollback is %q, want the target's original", b.entry.options)
	}
	if b.file(t, "variant") != "seedbuild-vm-x" || b.file(t, "target-conf") != "the target's own" || b.file(t, "target-data") != "target data" {
		t.Errorf("after the rollback: variant %q, /etc/target-node.conf %q, target data %q; want the target's own OS X and state",
			b.file(t, "variant"), b.file(t, "target-conf"), b.file(t, "target-data"))
	}
	for _, sr := range []string{"seed", "fb"} {
		if !strings.Contains(b.file(t, "status"), sr+" ") {
			t.Errorf("after the rollback, ostree admin status lacks the %s stateroot:\n%s", sr, b.file(t, "status"))
		}
	}
}

func checkFirstBootState(t *testing.T, s seeds, b boot) {
	t.Helper()
	if got := b.file(t, "etc-sum"); got != s.sums[0] {
		t.Errorf("/etc/kubernetes/kubelet.conf after the first-boot unit: sum %s, want the seed node's %s", got, s.sums[0])
	}
	if got := b.file(t, "issue.net"); got != "absent" {
		t.Errorf("/etc/issue.net, deleted on the seed node, is %s after the first-boot unit", got)
	}
}

// checkSpaceFacts compares deploy's space facts with what the node itself
// says of / and /boot.
func checkSpaceFacts(t *testing.T, b boot) {
	t.Helper()
	var dry struct {
		Host struct {
			FreeBytes     uint64 `json:"free_bytes"`
			BootFreeBytes uint64 `json:"boot_free_bytes"`
		} `json:"host"`
	}
	if err := json.Unmarshal([]byte(b.file(t, "dry-run.json")), &dry); err != nil {
		t.Fatalf("deploy --dry-run --json: %v", err)
	}
	for _, c := range []struct {
		name string
		got  uint64
		df   string
	}{{"/", dry.Host.FreeBytes, b.file(t, "df-root")}, {"/boot", dry.Host.BootFreeBytes, b.file(t, "df-boot")}} {
		var avail, bsize uint64
		if _, err := fmt.Sscan(c.df, &avail, &bsize); err != nil {
			t.Fatalf("reading %q: %v", c.df, err)
		}
		want := avail * bsize
		if c.got < want*9/10 || c.got > want*11/10 || want < 1<<30 {
			t.Errorf("deploy's free space of %s = %d, the node says %d", c.name, c.got, want)
		}
	}
}

const tarballDeployStage = avcStage + inImage + `
start=$(date +%s)
# The classic seed is deployed from seedbuild's image: the node's ostree
# pulls the seed's commit and deploys it.
$SBC deploy oci-archive:/host$X/seeds/classic.tar --stateroot classic --not-as-default
$SB deploy oci-archive:$X/seeds/bootc-tarball.tar --stateroot tarball --method ostree
echo $(( $(date +%s) - start )) >$O/deploy-seconds
ostree admin status >$O/status-after
`

// TestBootedTarballSeeds deploys the classic and bootc-tarball seeds of the
// same seed node on a booted target and boots each.
func TestBootedTarballSeeds(t *testing.T) {
	t.Parallel()
	s := getSeeds(t)
	disk := makeNode(t, getNodeOS(t), func(etc, varDir string) { targetNodeState(t, etc, varDir) })
	n := newNode(t, "target", disk)
	n.put(s.path("classic"), "seeds/classic.tar")
	n.put(s.path("bootc-tarball"), "seeds/bootc-tarball.tar")
	n.put(seedbuildImage(t), "seedbuild-image.tar")
	// The upstream agent's prep, replayed, takes the classic seed made on
	// the live seed node, and restores the seed node's origin.
	checkAgentPrep(t, s)
	b := n.boot("deploy", tarballDeployStage)
	original := b
	checkImageTools(t, b)
	t.Logf("deploy of the classic and bootc-tarball seeds took %ss", b.file(t, "deploy-seconds"))

	b = n.boot("bootc-tarball", seedStateStage+selinuxStage+setDefault+"set_default classic\n")
	if !strings.Contains(b.entry.options, "/tarball/") {
		t.Errorf("the default entry is %q, want the tarball stateroot's", b.entry.options)
	}
	checkSeedState(t, s, b, "seedbuild-vm-y")
	wantCmdline(t, b.file(t, "cmdline"), append(append([]string{}, seedKargs...), nodeKargs...)...)
	checkSELinuxBoot(t, s, b, original)

	b = n.boot("classic", seedStateStage+selinuxStage)
	if !strings.Contains(b.entry.options, "/classic/") {
		t.Errorf("the default entry is %q, want the classic stateroot's", b.entry.options)
	}
	// A classic seed carries the seed node's own OS commit: X.
	checkSeedState(t, s, b, "seedbuild-vm-x")
	wantCmdline(t, b.file(t, "cmdline"), append(append([]string{}, seedKargs...), nodeKargs...)...)
	checkSELinuxBoot(t, s, b, original)
}

// checkAgentPrep runs hack/lca-prep-reference.sh on the classic seed made
// on the live seed node, into a sysroot on the test host, and checks the
// new deployment's origin is the seed node's.
func checkAgentPrep(t *testing.T, s seeds) {
	st := newStore(t)
	sys := newSysroot(t)
	r := runEnv(t, st.buildahEnv(), hackScript("lca-prep-reference.sh"), s.path("classic"), sys, "4.20.0")
	deployment, ok := strings.CutPrefix(strings.TrimSpace(r.stdout), "prepared ")
	if r.code != 0 || !ok {
		t.Errorf("the agent's prep (lca-prep-reference.sh) of the classic seed made on the live node: %s", r)
		return
	}
	got, err := os.ReadFile(deployment + ".origin")
	if err != nil || strings.TrimSpace(string(got)) != s.origin {
		t.Errorf("after the agent's prep of the live node's classic seed, the origin = %q (%v), want the seed node's %q", got, err, s.origin)
	}
}
