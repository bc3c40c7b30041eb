package tests

// The bootc and ostree-ext routes on a booted node: the deploy methods
// that need the real node (bootc installs only into the running system's
// root; ostree-ext stages on a booted one), each booted.

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// buildStandin builds the stand-in in ./pkg as a static binary at out.
func buildStandin(t *testing.T, pkg, out string) {
	t.Helper()
	build := exec.Command("go", "build", "-tags", "containers_image_openpgp exclude_graphdriver_btrfs", "-o", out, "./"+pkg)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if data, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the %s stand-in: %v\n%s", pkg, err, data)
	}
}

// bootcSeedOf is the native seed with the bootc stand-in (built at bootc)
// as its /usr/bin/bootc, in a layer of its own (RHCOS has bootc; the test
// node's OS does not), as an oci-archive.
func bootcSeedOf(t *testing.T, native, bootc string) string {
	t.Helper()
	dir := t.TempDir()
	st := newStore(t)
	ctr := strings.TrimSpace(st.buildah(t, "from", "oci-archive:"+native))
	st.buildah(t, "copy", "--chmod", "0755", ctr, bootc, "/usr/bin/bootc")
	out := filepath.Join(dir, "native-bootc.tar")
	st.buildah(t, "commit", "-q", ctr, "oci-archive:"+out)
	st.buildah(t, "rm", ctr)
	return out
}

// toolsDeployStage deploys the native seed (with the bootc stand-in in a
// layer of its own) twice on the booted target: with --method bootc (the
// node's podman service runs the bootc stand-in from the seed, which bootc
// reads from the node's default store, where deploy pulls it and, with
// --keep-image, leaves it) and with --method ostree-ext from that store
// (its stand-in as the node's `ostree container`, which stages on a booted
// host), as the agent deploys a seed its prep pulled. The bootc deploy is
// written at once and is the default; the ostree-ext one is staged, and
// the node's ostree-finalize-staged makes it the default at shutdown.
// (A second pull of the seed, from its archive, took 4 of the boot's 16
// minutes in a clean-clone run.)
const toolsDeployStage = `
systemctl start podman.socket
rc=0; $SB deploy oci-archive:$X/seeds/native-bootc.tar --stateroot viabootc --method bootc --keep-image --json >$O/bootc.json 2>$O/bootc.log || rc=$?; echo $rc >$O/bootc.rc
cp /var/tmp/bootc-standin.json $O/bootc-standin.json || true
ostree admin status >$O/status-bootc
podman images --format '{{.Repository}}:{{.Tag}}' >$O/images
seed=$(grep -m1 '^localhost/seedbuild-seed:' $O/images)
mkdir -p /run/ostree-ext-standin
cp $X/ostree-ext-standin /run/ostree-ext-standin/ostree
chmod 0755 /run/ostree-ext-standin/ostree
rc=0; PATH=/run/ostree-ext-standin:$PATH $SB deploy containers-storage:$seed --stateroot viaext --method ostree-ext --json >$O/ext.json 2>$O/ext.log || rc=$?; echo $rc >$O/ext.rc
ostree admin status >$O/status-ext
ls /run/ostree/staged-deployment >$O/staged-file 2>&1 || true
`

// TestBootedImageTools deploys a native seed by the bootc and the
// ostree-ext methods on a booted target, and boots each stateroot.
func TestBootedImageTools(t *testing.T) {
	t.Parallel()
	// What needs no seed is made while the seed node boots: the stand-ins
	// and the node. Its chain, the longest, then takes the first free VM
	// (toolsBoot).
	bootc := filepath.Join(t.TempDir(), "bootc")
	buildStandin(t, "bootcstandin", bootc)
	extBin := filepath.Join(t.TempDir(), "ostree-ext-standin")
	buildStandin(t, "ostreeextstandin", extBin)
	disk := makeNode(t, getNodeOS(t), func(etc, varDir string) { targetNodeState(t, etc, varDir) })
	n := newNode(t, "tools", disk)
	n.priority = toolsBoot
	s := getSeeds(t)
	n.put(bootcSeedOf(t, s.path("native"), bootc), "seeds/native-bootc.tar")
	n.put(extBin, "ostree-ext-standin")

	b := n.boot("deploy", toolsDeployStage)
	if rc := b.file(t, "bootc.rc"); rc != "0" {
		t.Fatalf("deploy --method bootc on the booted target: exit %s\n%s", rc, tail(b.file(t, "bootc.log"), 30))
	}
	if rc := b.file(t, "ext.rc"); rc != "0" {
		t.Fatalf("deploy --method ostree-ext on the booted target: exit %s\n%s", rc, tail(b.file(t, "ext.log"), 30))
	}
	var rec struct {
		Argv       []string `json:"argv"`
		EntryKargs []string `json:"entry_kargs"`
		Image      string   `json:"image"`
		Mounts     []string `json:"mounts"`
		PID1       string   `json:"pid1_comm"`
		Removed    []string `json:"boot_removed"`
	}
	if err := json.Unmarshal([]byte(b.file(t, "bootc-standin.json")), &rec); err != nil {
		t.Fatalf("the bootc stand-in's record: %v", err)
	}
	if rec.PID1 != "systemd" || !slices.Contains(rec.Mounts, "/target") {
		t.Errorf("bootc ran with pid 1 %q and mounts %q; want the host's pid namespace and /target", rec.PID1, rec.Mounts)
	}
	// bootc emptied /boot but its loader entries, as on any ostree node:
	// the kernels of the node's own deployment went, and ostree put them
	// back when it wrote the new boot configuration.
	if !slices.Contains(rec.Removed, "ostree") {
		t.Errorf("bootc's clean_boot_directories removed %q from /boot, want its ostree/ kernels among them", rec.Removed)
	}
	var ext struct {
		Staged bool `json:"staged"`
	}
	if err := json.Unmarshal([]byte(b.file(t, "ext.json")), &ext); err != nil || !ext.Staged {
		t.Errorf("deploy --method ostree-ext on a booted host: staged %v (%v), want a staged deployment\n%s", ext.Staged, err, b.file(t, "ext.json"))
	}
	if st := b.file(t, "status-ext"); !strings.Contains(st, "viaext") || !strings.Contains(st, "(staged)") {
		t.Errorf("ostree admin status after the ostree-ext deploy:\n%s\nwant viaext staged", st)
	}
	if f := b.file(t, "staged-file"); f != "/run/ostree/staged-deployment" {
		t.Errorf("/run/ostree/staged-deployment: %s", f)
	}

	// The staged deployment was written at shutdown and is the default.
	b = n.boot("ostree-ext", seedStateStage+setDefault+"set_default viabootc\n")
	if !strings.Contains(b.entry.options, "/viaext/") {
		t.Fatalf("after the staged ostree-ext deploy the node booted %q, want the viaext stateroot", b.entry.options)
	}
	checkSeedState(t, s, b, "seedbuild-vm-y")
	wantExactCmdline(t, b.file(t, "cmdline"), routeKargs())
	t.Logf("ostree-ext route: %s", proofLineOf(b))

	b = n.boot("bootc", seedStateStage)
	if !strings.Contains(b.entry.options, "/viabootc/") {
		t.Fatalf("after set-default the node booted %q, want the viabootc stateroot", b.entry.options)
	}
	checkSeedState(t, s, b, "seedbuild-vm-y")
	wantExactCmdline(t, b.file(t, "cmdline"), routeKargs())
	t.Logf("bootc route: %s", proofLineOf(b))
}

// routeKargs is the kernel command line a seed's stateroot boots with on
// the test target: the seed's MachineConfig kargs, its ibu= and the SELinux
// ones (seedKargs), and the node's own root=, rw and console= (deployer's
// CarriedFromHost), each once.
func routeKargs() []string {
	return append(append([]string{}, seedKargs...), "root=/dev/vda", "rw", "console=ttyS0")
}

// wantExactCmdline checks the booted kernel's command line is want, in any
// order, with no argument twice and none else: the bootloader's own
// (BOOT_IMAGE=, initrd=) and ostree's ostree= left out.
func wantExactCmdline(t *testing.T, cmdline string, want []string) {
	t.Helper()
	var got []string
	for _, f := range strings.Fields(cmdline) {
		if !strings.HasPrefix(f, "ostree=") && !strings.HasPrefix(f, "BOOT_IMAGE=") && !strings.HasPrefix(f, "initrd=") {
			got = append(got, f)
		}
	}
	sort.Strings(got)
	w := append([]string{}, want...)
	sort.Strings(w)
	if !slices.Equal(got, w) {
		t.Errorf("/proc/cmdline %q\nwant exactly (any order) %q", cmdline, w)
	}
}

// proofLineOf says what a boot booted, for the log.
func proofLineOf(b boot) string {
	return "booted " + b.entry.title + " (" + b.entry.options + ")"
}
