package deployer

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/seedbuild/seedbuild/internal/hostroot"
	"github.com/seedbuild/seedbuild/internal/scratch"
	"github.com/seedbuild/seedbuild/labels"
)

// fakeNode is a host for the tests below: a sysroot that is its live /,
// with the kernel command line given, booted (run/ostree-booted) when the
// command line names an ostree deployment, and a runner that records what
// it is asked and answers `ostree admin status` with status.
func fakeNode(t *testing.T, cmdline, status string) (hostroot.Host, *fakeRunner) {
	t.Helper()
	root, proc := t.TempDir(), t.TempDir()
	for _, d := range []string{"ostree/deploy", "run"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(cmdline, "ostree=") {
		if err := os.WriteFile(filepath.Join(root, "run/ostree-booted"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(proc, "cmdline"), []byte(cmdline+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &fakeRunner{stdout: map[string]string{"ostree": status}}
	return hostroot.Fake(root, proc, r), r
}

// TestRecoverJournals: what the next run does with a journal a run left,
// on a fake node: a dead run's undo list is run (unless only the booted
// stateroot's journal is to be finished), a run whose deployment the node
// booted is finished (its spare removed, nothing undone), and a live
// run's journal is left alone.
func TestRecoverJournals(t *testing.T) {
	const cs = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	status := "* seed " + cs + ".1\n    origin: <unknown origin type>\n  seed " + cs + ".0\n  node " + cs + ".0\n"
	tests := []struct {
		name       string
		cmdline    string
		stamp      string // pid and boot of the run that left the journal
		bootedOnly bool
		undone     bool   // the undo list ran
		journal    bool   // the journal is still there after
		event      string // what the recovery says
		runs       string // a command it ran, "" for none
	}{
		{name: "dead run, not booted", cmdline: "root=/dev/vda rw", stamp: "999999 an-earlier-boot", undone: true, event: "Undid an interrupted deploy into stateroot seed"},
		{name: "dead run, booted stateroot only", cmdline: "root=/dev/vda rw", stamp: "999999 an-earlier-boot", bootedOnly: true, journal: true},
		{name: "dead run whose deployment the node booted", cmdline: "root=/dev/vda ostree=/ostree/boot.1/seed/abc/0", stamp: "999999 an-earlier-boot",
			event: "Finished an interrupted deploy into stateroot seed", runs: "ostree admin undeploy --sysroot=ROOT 1"},
		{name: "live run", cmdline: "root=/dev/vda rw", stamp: scratch.Stamp(), journal: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, r := fakeNode(t, tt.cmdline, status)
			sysroot := host.Root()
			stage := filepath.Join(t.TempDir(), "stage")
			if err := os.Mkdir(stage, 0o755); err != nil {
				t.Fatal(err)
			}
			fields := strings.Fields(tt.stamp)
			pid, err := strconv.Atoi(fields[0])
			if err != nil {
				t.Fatal(err)
			}
			boot := fields[1]
			j := journal{PID: pid, Boot: boot, Stateroot: "seed", Done: 3, Vars: map[string]string{varName(phStage): stage},
				Undo: []Step{{Desc: "remove the staging folder", Action: ActionUnstageUsrEtc, Args: map[string]string{argStage: phStage}}}}
			data, _ := json.Marshal(j)
			path := filepath.Join(sysroot, "ostree", journalPrefix+"seed.json")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			var events []Event
			e := &executor{runner: r, host: host, sysroot: sysroot, vars: map[string]string{}, events: func(ev Event) { events = append(events, ev) }}
			e.registerActions()
			if err := e.recoverJournals(context.Background(), tt.bootedOnly); err != nil {
				t.Fatalf("recoverJournals() = %v", err)
			}
			if _, err := os.Stat(stage); os.IsNotExist(err) != tt.undone {
				t.Errorf("the undo list ran: %v, want %v", os.IsNotExist(err), tt.undone)
			}
			if _, err := os.Stat(path); (err == nil) != tt.journal {
				t.Errorf("the journal is there after: %v, want %v", err == nil, tt.journal)
			}
			said := ""
			for _, ev := range events {
				said += ev.Desc + "\n"
			}
			if (tt.event == "") != (said == "") || !strings.Contains(said, tt.event) {
				t.Errorf("recoverJournals said %q, want %q", said, tt.event)
			}
			ran := ""
			for _, c := range r.calls {
				ran += strings.ReplaceAll(strings.Join(c, " "), sysroot, "ROOT") + "\n"
			}
			if tt.runs != "" && !strings.Contains(ran, tt.runs) {
				t.Errorf("recoverJournals ran:\n%swant %q", ran, tt.runs)
			}
			if tt.runs == "" && strings.Contains(ran, "undeploy") {
				t.Errorf("recoverJournals undeployed, want nothing undeployed:\n%s", ran)
			}
		})
	}
}

// TestChooseRoute: how a seed reaches the sysroot, on a fake node whose
// `ostree container` works or not and whose podman service answers or
// not: unpacked for classic seeds, --method ostree, and auto where neither
// bootc (with podman) nor ostree-ext can install it; else pulled into
// containers-storage and mounted.
func TestChooseRoute(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "podman.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Libpod-API-Version", "4.3.1")
		w.Header().Set("API-Version", "1.41")
		w.Write([]byte("OK"))
	})}
	go srv.Serve(l)
	defer srv.Close()
	answering, silent := "unix://"+sock, "unix://"+filepath.Join(t.TempDir(), "none.sock")
	ostreeExtHelp := "Usage: ostree container image deploy --stateroot <STATEROOT> --imgref <IMGREF>"
	tests := []struct {
		name      string
		kind      labels.Kind
		method    Method
		ostreeExt bool
		podman    string
		// folder deploys into a sysroot that is not the host's root.
		folder bool
		unpack bool
	}{
		{"classic", labels.Classic, Auto, true, answering, false, true},
		{"--method ostree", labels.Native, Ostree, true, answering, false, true},
		{"auto, neither bootc nor ostree-ext", labels.Native, Auto, false, silent, false, true},
		{"auto, ostree-ext", labels.Native, Auto, true, silent, false, false},
		{"auto, podman answers", labels.Native, Auto, false, answering, false, false},
		// bootc is not asked for a sysroot in a folder: the seed unpacks.
		{"auto, podman answers, a sysroot in a folder", labels.Native, Auto, false, answering, true, true},
		{"--method bootc", labels.Native, Bootc, false, silent, false, false},
		{"--method ostree-ext", labels.BootcTarball, OstreeExt, false, silent, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			help := ""
			if tt.ostreeExt {
				help = ostreeExtHelp
			}
			host, _ := fakeNode(t, "root=/dev/vda", help)
			sysroot := host.Root()
			if tt.folder {
				sysroot = t.TempDir()
			}
			r := chooseRoute(context.Background(), Config{Options: Options{Method: tt.method, Sysroot: sysroot}, Host: host, PodmanURL: tt.podman}, SeedFacts{Kind: tt.kind})
			if r.unpack != tt.unpack {
				t.Errorf("chooseRoute(%s, %s).unpack = %v, want %v", tt.kind, tt.method, r.unpack, tt.unpack)
			}
		})
	}
}
