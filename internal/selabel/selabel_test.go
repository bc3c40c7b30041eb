package selabel

import (
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// policyTree copies testdata's synthetic policy into a new tree, under
// etc/selinux or, with usrEtc, usr/etc/selinux, and returns the tree.
func policyTree(t *testing.T, usrEtc bool) string {
	t.Helper()
	root := t.TempDir()
	dst := filepath.Join(root, "etc")
	if usrEtc {
		dst = filepath.Join(root, "usr/etc")
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", "testdata/etc/selinux", dst+"/").CombinedOutput(); err != nil {
		t.Fatalf("copying the policy: %v\n%s", err, out)
	}
	return root
}

const (
	dir  = unix.S_IFDIR | 0o755
	file = unix.S_IFREG | 0o644
	link = unix.S_IFLNK | 0o777
)

// TestLabel: what the synthetic policy gives each path, as libselinux
// reads file contexts: of the specs that match (the file type too), the
// last wins, specs with no regex characters after all the others; .local
// and .homedirs are read after the base; .subs_dist rewrites a path's
// prefix first; ostree looks /proc up as /mnt; <<none>> is no label.
func TestLabel(t *testing.T) {
	for _, usrEtc := range []bool{false, true} {
		p, err := Load(policyTree(t, usrEtc))
		if err != nil || p == nil {
			t.Fatalf("Load (policy under usr/etc %v): %v, %v", usrEtc, p, err)
		}
		defer p.Close()
		if p.Name != "default" {
			t.Errorf("policy name %q, want default", p.Name)
		}
	}
	p, err := Load(policyTree(t, false))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.matcher == nil {
		t.Fatalf("the synthetic policy is looked up by libselinux: %s", p.Fallback)
	}
	m := p.matcher
	for _, backend := range []string{"matcher", "libselinux"} {
		if backend == "libselinux" {
			p.matcher = nil
		}
		labelTable(t, p, backend)
	}
	p.matcher = m
}

func labelTable(t *testing.T, p *Policy, backend string) {
	for _, c := range []struct {
		path   string
		mode   uint32
		usrEtc bool
		want   string // "" for no label
	}{
		{"/", dir, false, "root_t"},
		{"/foo", file, false, "etc_runtime_t"},
		{"/foo", dir, false, "default_t"},
		{"/bin", link, false, "bin_t"},
		{"/etc/hosts", file, false, "etc_t"},
		{"/etc/shadow", file, false, "shadow_t"},
		{"/etc/shadow", dir, false, "etc_t"},
		{"/usr/bin/bash", file, false, "shell_exec_t"},
		{"/usr/bin/bash", link, false, "bin_t"},
		{"/usr/lib64/libc.so.6", file, false, "lib_t"},
		{"/usr/local/bin/tool", file, false, "bin_t"},
		{"/proc", dir, false, "mnt_t"},
		{"/proc/1", dir, false, ""},
		{"/tmp/x", file, false, ""},
		{"/var/tmp", dir, false, "tmp_t"},
		{"/var/tmp/x", file, false, ""},
		{"/home/core", dir, false, "user_home_dir_t"},
		{"/var/home/core/.bashrc", file, false, "user_home_t"},
		{"/usr/etc/hosts", file, false, "usr_t"},
		{"/usr/etc/hosts", file, true, "etc_t"},
		{"/usr/etc", dir, true, "etc_t"},
		{"/usr/etcetera", dir, true, "usr_t"},
		{"/usr/etc/selinux/default/policy/policy.33", file, true, "policy_config_t"},
		{"/srv/a/log/x.log", file, false, "var_log_t"},
		{"/srv/b/bin/tool", file, false, "bin_t"},
		{"//usr//bin/bash/", file, false, "shell_exec_t"},
		{"/usr", dir, false, "usr_t"},
		// "^/opt/alt|/data$": the second branch is anchored at the end
		// only, but the spec's stem (/opt) keeps it from other stems.
		{"/opt/x/data", file, false, "alt_t"},
		{"/var/lib/data", file, false, "var_lib_t"},
		{"/opt/alt/x", file, false, "alt_t"},
		{"/var/lib/data/x", file, false, "var_lib_t"},
	} {
		p.UsrEtcAsEtc = c.usrEtc
		got, ok, err := p.Label(c.path, c.mode)
		if err != nil {
			t.Errorf("%s (%o): %v", c.path, c.mode, err)
			continue
		}
		if want := "system_u:object_r:" + c.want + ":s0"; c.want == "" && ok || c.want != "" && got != want {
			t.Errorf("%s: %s (%o, /usr/etc as /etc %v): %q (%v), want %q", backend, c.path, c.mode, c.usrEtc, got, ok, c.want)
		}
	}
}

// TestLoad: a tree without a config that turns SELinux on is not
// labelled; a policy without a binary policy or without file contexts is
// refused, as ostree refuses it.
func TestLoad(t *testing.T) {
	for _, c := range []struct {
		name    string
		change  func(root string)
		none    bool
		wantErr string
	}{
		{"no config", func(root string) { os.Remove(filepath.Join(root, "etc/selinux/config")) }, true, ""},
		{"disabled", func(root string) {
			os.WriteFile(filepath.Join(root, "etc/selinux/config"), []byte("SELINUX=disabled\nSELINUXTYPE=default\n"), 0o644)
		}, true, ""},
		{"indented keys count for nothing", func(root string) {
			os.WriteFile(filepath.Join(root, "etc/selinux/config"), []byte(" SELINUX=enforcing\nSELINUXTYPE=default\n"), 0o644)
		}, true, ""},
		{"Enforcing, any case", func(root string) {
			os.WriteFile(filepath.Join(root, "etc/selinux/config"), []byte("SELINUX=Enforcing\nSELINUXTYPE=default\n"), 0o644)
		}, false, ""},
		{"no binary policy", func(root string) { os.Remove(filepath.Join(root, "etc/selinux/default/policy/policy.33")) }, false, "no binary policy"},
		{"no file contexts", func(root string) {
			os.Remove(filepath.Join(root, "etc/selinux/default/contexts/files/file_contexts"))
		}, false, "file_contexts"},
		{"a type that names no policy", func(root string) {
			os.WriteFile(filepath.Join(root, "etc/selinux/config"), []byte("SELINUX=enforcing\nSELINUXTYPE=\n"), 0o644)
		}, false, "does not name a policy"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := policyTree(t, false)
			c.change(root)
			p, err := Load(root)
			if p != nil {
				defer p.Close()
			}
			switch {
			case c.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Errorf("Load: %v, want an error with %q", err, c.wantErr)
				}
			case err != nil:
				t.Errorf("Load: %v", err)
			case c.none != (p == nil):
				t.Errorf("Load gave a policy %v, want one %v", p != nil, !c.none)
			}
		})
	}
}

// TestMatcherAgreesWithLibselinux looks up 30,000 paths made of the
// synthetic policy's words (and the substitutions' sources) with the
// matcher and with libselinux: every label must be the same.
func TestMatcherAgreesWithLibselinux(t *testing.T) {
	p, err := Load(policyTree(t, false))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	words := []string{"usr", "lib", "lib64", "local", "etc", "bin", "sbin", "s", "var", "home", "core", "tmp", "proc", "run",
		"selinux", "default", "contexts", "policy", "ssh", "ssh_host_rsa_key", "systemd", "system", "cron.d", "crontab",
		"x.so.1", "libc.so", "resolv.conf", "hosts", "shadow", "shadow-", "log", "a.log", "journal", "mnt", "data",
		"opt", "site", "srv", "a", "b", "lost+found", "boot", "loader", "modules", "share", "man", "doc", "libexec",
		"openssh", "sftp-server", "bash", "zsh", "sudo", "sshd", "roothome", "spool", "cron", "cache", "containers",
		"kubelet", "pkg", "foo.d", "tmp", "sysroot", "ostree", ".bashrc", "alt"}
	modes := []uint32{dir, file, link, 0, unix.S_IFIFO | 0o644}
	r := rand.New(rand.NewSource(1))
	differ := 0
	for i := 0; i < 30000 && differ < 10; i++ {
		var b strings.Builder
		for n := 1 + r.Intn(5); n > 0; n-- {
			b.WriteString("/" + words[r.Intn(len(words))])
		}
		path, mode := b.String(), modes[r.Intn(len(modes))]
		got, gotOK := p.matcher.lookup(path, mode)
		want, wantOK, err := p.lookup(path, mode)
		if err != nil {
			t.Fatalf("libselinux, %s: %v", path, err)
		}
		if got != want || gotOK != wantOK {
			differ++
			t.Errorf("%s (%o): the matcher %q (%v), libselinux %q (%v)", path, mode, got, gotOK, want, wantOK)
		}
	}
}

// TestLiteralPrefix: what every match of a spec starts with, which the
// matcher indexes it by; an optional or repeated character ends it, and
// an alternation keeps only what all its branches share.
func TestLiteralPrefix(t *testing.T) {
	for _, c := range []struct{ re, want string }{
		{"/usr/lib(/.*)?", "/usr/lib"},
		{"/usr/s?bin(/.*)?", "/usr/"},
		{"/etc/resolv\\.conf.*", "/etc/resolv.conf"},
		{"/lost\\+found(/.*)?", "/lost+found"},
		{"/usr/bin/(ba|da|z)?sh", "/usr/bin/"},
		{"/var/(lib|log)/x", "/var/"},
		{"/usr/a|/usr/b", ""},
		{"/usr/(a|b)", "/usr/"},
		{"/usr/[|]x", "/usr/|x"},
		{"/usr/\\|x", "/usr/|x"},
		{"/usr/[]|]x", "/usr/"},
		{".*", ""},
		{"/home/[^/]+", "/home/"},
		{"/usr/lib64", "/usr/lib64"},
		{"(?i)/abc", ""},
		{"/usr/lib/a\\Q(\\E|/usr/lib/b", ""},
		{"/usr/lib/[[:alpha:](]|/usr/lib/b", ""},
		{"/x|^/xy", ""},
	} {
		if got := literalPrefix(c.re); got != c.want {
			t.Errorf("literalPrefix(%q) = %q, want %q", c.re, got, c.want)
		}
	}
}

// TestMatcherLeavesToLibselinux: what RE2 would read otherwise than PCRE2
// does where libselinux compiles it (byte by byte) goes to libselinux: a
// policy with such a regex, and a path with a byte outside printable
// ASCII; an empty path is an error, as libselinux's lookup makes it.
func TestMatcherLeavesToLibselinux(t *testing.T) {
	for _, re := range []string{"/x/\\x{e9}", "/x/caf\xc3\xa9", "/x/(?i)abc", "/x/\\v", "/x/\\Qa\\E"} {
		if plainPattern(re) {
			t.Errorf("plainPattern(%q) = true", re)
		}
	}
	p, err := Load(policyTree(t, false))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, key := range []string{"/usr/bin/caf\xc3\xa9", "/x/\xe9", "/etc/a\tb"} {
		got, ok, err := p.Label(key, file)
		want, wantOK, werr := p.lookup(key, file)
		if err != nil || werr != nil || got != want || ok != wantOK {
			t.Errorf("%q: %q %v %v, libselinux %q %v %v", key, got, ok, err, want, wantOK, werr)
		}
	}
	if _, _, err := p.Label("", file); err == nil {
		t.Errorf("an empty path: no error")
	}
	dir := policyTree(t, false)
	fc := filepath.Join(dir, "etc/selinux/default/contexts/files/file_contexts")
	appendLine(t, fc, "/x/caf\\xe9\tsystem_u:object_r:etc_t:s0")
	q, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if q.matcher != nil || !strings.Contains(q.Fallback, "RE2") {
		t.Errorf("a policy with a \\x escape: matcher %v, fallback %q", q.matcher != nil, q.Fallback)
	}
}

// TestCompiledContexts: where libselinux reads file_contexts.bin (not
// older than the text), the matcher, which reads the text, is used only
// if the two agree; a .bin without its text leaves the lookups to
// libselinux. (The .bin here is the text compiled by sefcontext_compile
// when the host has it; a .bin libselinux cannot read fails Load, as it
// fails ostree.)
func TestCompiledContexts(t *testing.T) {
	compile, err := exec.LookPath("sefcontext_compile")
	if err != nil {
		t.Skip("no sefcontext_compile on this host (package selinux-utils)")
	}
	dir := policyTree(t, false)
	fc := filepath.Join(dir, "etc/selinux/default/contexts/files/file_contexts")
	if out, err := exec.Command(compile, fc).CombinedOutput(); err != nil {
		t.Fatalf("sefcontext_compile: %v\n%s", err, out)
	}
	p, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.matcher == nil {
		t.Errorf("the text and its compiled form agree, yet the matcher is not used: %s", p.Fallback)
	}
	// The text changed after the compile, but no newer than the .bin:
	// libselinux reads the .bin, so the matcher must not be used.
	appendLine(t, fc, "/usr/bin/bash\t--\tsystem_u:object_r:changed_t:s0")
	bin, err := os.Stat(fc + ".bin")
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.Chtimes(fc, bin.ModTime(), bin.ModTime()))
	q, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if q.matcher != nil || !strings.Contains(q.Fallback, "compiled") {
		t.Errorf("the text disagrees with the .bin libselinux reads: matcher %v, fallback %q", q.matcher != nil, q.Fallback)
	}
	if got, _, _ := q.Label("/usr/bin/bash", file); got != "system_u:object_r:shell_exec_t:s0" {
		t.Errorf("/usr/bin/bash: %q, want the .bin's shell_exec_t", got)
	}
	// LoadUnchecked does not look: its matcher reads the text, and so
	// guesses otherwise than libselinux, which the deployer's commit
	// (through Load) corrects.
	g, err := LoadUnchecked(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if got, _, _ := g.Label("/usr/bin/bash", file); g.matcher == nil || got != "system_u:object_r:changed_t:s0" {
		t.Errorf("LoadUnchecked: matcher %v, /usr/bin/bash %q; want the text's changed_t", g.matcher != nil, got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// appendLine adds a line to the file at path.
func appendLine(t *testing.T, path, line string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString(line + "\n")
	must(t, errors.Join(err, f.Close()))
}
