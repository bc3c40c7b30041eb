package builder

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/seedbuild/seedbuild/internal/mounts"
	"golang.org/x/sys/unix"
)

// capture reads a host root and writes the parts of it a seed carries.
type capture struct {
	root   string
	excl   *excluder
	mounts map[string]bool
	tally  *tally
	creds  *credentialScan
}

// tree writes root/rel and everything under it that is not excluded,
// naming each entry name(rel).
func (c *capture) tree(w *entryWriter, rel string, name func(rel string) string) error {
	return walk(c.root, rel, c.mounts, func(hostPath, rel string, st *unix.Stat_t) (bool, error) {
		if c.excl.match(rel) {
			return false, nil
		}
		added, err := w.add(hostPath, name(rel), st)
		if err != nil || !added {
			return false, err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			c.creds.check(hostPath, rel)
		}
		return true, nil
	})
}

// etcEntries writes the changed /etc entries under prefix, each with the
// folders above it, so the tree is complete. Folders above the changed
// entries carry the live /etc metadata.
func (c *capture) etcEntries(w *entryWriter, changes etcChanges, prefix string) error {
	written := map[string]bool{}
	var ensure func(rel string) error
	ensure = func(rel string) error {
		if written[rel] {
			return nil
		}
		if parent := path.Dir(rel); parent != "." {
			if err := ensure(parent); err != nil {
				return err
			}
		} else if err := c.addEtc(w, "", prefix, written); err != nil {
			return err
		}
		return c.addEtc(w, rel, prefix, written)
	}
	for _, rel := range changes.changed {
		if err := ensure(rel); err != nil {
			return err
		}
	}
	if len(changes.changed) == 0 {
		return c.addEtc(w, "", prefix, written)
	}
	return nil
}

func (c *capture) addEtc(w *entryWriter, rel, prefix string, written map[string]bool) error {
	if written[rel] {
		return nil
	}
	written[rel] = true
	hostPath := filepath.Join(c.root, "etc", rel)
	var st unix.Stat_t
	if err := unix.Lstat(hostPath, &st); err != nil {
		return fmt.Errorf("reading %q: %w", hostPath, err)
	}
	name := strings.TrimSuffix(prefix+rel, "/")
	if _, err := w.add(hostPath, name, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFREG {
		c.creds.check(hostPath, "etc/"+rel)
	}
	return nil
}

// mountPoints lists the mount points strictly under root, except keep.
func mountPoints(root string, keep ...string) (map[string]bool, error) {
	under, err := mounts.Under(root)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, mp := range under {
		out[mp] = true
	}
	for _, k := range keep {
		delete(out, filepath.Join(filepath.Clean(root), k))
	}
	return out, nil
}

// The dummy pull secret the upstream agent swaps in before capture.
const (
	dummyUser = "empty"
	dummyPass = "empty"
	dummyAuth = "ZW1wdHk6ZW1wdHk="
)

// credentialScan looks at every captured config.json and auth.json for
// registry credentials other than the dummy pull secret.
type credentialScan struct {
	mu    sync.Mutex
	found []string
}

func (s *credentialScan) check(hostPath, rel string) {
	base := path.Base(rel)
	if base != "config.json" && base != "auth.json" {
		return
	}
	if holdsCredentials(hostPath) {
		s.mu.Lock()
		s.found = append(s.found, "/"+rel)
		s.mu.Unlock()
	}
}

// holdsCredentials reports whether the file is an auth file with a real
// credential. Unreadable or non-JSON files hold none that tools would use.
func holdsCredentials(hostPath string) bool {
	f, err := os.Open(hostPath)
	if err != nil {
		return false
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 8<<20))
	if err != nil {
		return false
	}
	var doc struct {
		Auths map[string]map[string]any `json:"auths"`
	}
	if json.Unmarshal(data, &doc) != nil {
		return false
	}
	for _, entry := range doc.Auths {
		if !isDummyAuth(entry) {
			return true
		}
	}
	return false
}

func isDummyAuth(entry map[string]any) bool {
	for k, v := range entry {
		s, _ := v.(string)
		switch k {
		case "auth":
			if s != "" && s != dummyAuth {
				return false
			}
		case "username":
			if s != "" && s != dummyUser {
				return false
			}
		case "password":
			if s != "" && s != dummyPass {
				return false
			}
		case "email":
		default:
			if v != nil && fmt.Sprint(v) != "" {
				return false
			}
		}
	}
	return true
}
