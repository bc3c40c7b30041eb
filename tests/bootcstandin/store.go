package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// storeDir is the default container store, the host's.
const storeDir = "/var/lib/containers/storage"

// storeImage is what bootc reads of an image: its labels, architecture
// and how many layers it has.
type storeImage struct {
	labels map[string]string
	arch   string
	layers int
}

// findImage reads image id from the overlay store at dir, from its own
// files (overlay-images/images.json, each image's big data under
// bigDataName, overlay-layers/layers.json): the stand-in reads
// the store without taking it over from the podman that runs it.
func findImage(dir, id string) (storeImage, error) {
	var images []struct {
		ID          string   `json:"id"`
		Layer       string   `json:"layer"`
		BigDataKeys []string `json:"big-data-names"`
	}
	if err := readJSON(filepath.Join(dir, "overlay-images/images.json"), &images); err != nil {
		return storeImage{}, err
	}
	var layers []struct {
		ID     string `json:"id"`
		Parent string `json:"parent"`
	}
	if err := readJSON(filepath.Join(dir, "overlay-layers/layers.json"), &layers); err != nil {
		return storeImage{}, err
	}
	parents := map[string]string{}
	for _, l := range layers {
		parents[l.ID] = l.Parent
	}
	for _, img := range images {
		if img.ID != id {
			continue
		}
		out := storeImage{}
		for l := img.Layer; l != "" && out.layers < 1000; l = parents[l] {
			out.layers++
		}
		for _, key := range img.BigDataKeys {
			var config struct {
				Architecture string `json:"architecture"`
				Config       struct {
					Labels map[string]string `json:"Labels"`
				} `json:"config"`
			}
			file := filepath.Join(dir, "overlay-images", id, bigDataName(key))
			if readJSON(file, &config) == nil && config.Architecture != "" {
				out.labels, out.arch = config.Config.Labels, config.Architecture
				return out, nil
			}
		}
		return storeImage{}, fmt.Errorf("image %s has no configuration in %s", id, dir)
	}
	return storeImage{}, fmt.Errorf("no image %s in %s", id, dir)
}

// bigDataName is the file name the store gives an image's big data key:
// the key when it is lower-case letters, digits and dots up to its last
// character, else "=" and the key in base64 (go.podman.io/storage,
// store.go, makeBigDataBaseName).
func bigDataName(key string) string {
	for i, c := range key {
		if c != '.' && (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			if i < len(key)-1 || c >= 0x80 {
				return "=" + base64.StdEncoding.EncodeToString([]byte(key))
			}
			break
		}
	}
	return key
}

// containerRoot is the root of container id as the host mounted it: its
// layer's merged folder in the store at dir, as PID 1 sees it. It is the
// image's content with nothing bind-mounted over it (podman binds
// /etc/hosts, /etc/hostname and /etc/resolv.conf into the container's
// own view), as bootc reads the image from the store.
func containerRoot(dir, id string) (string, error) {
	var containers []struct {
		ID    string `json:"id"`
		Layer string `json:"layer"`
	}
	if err := readJSON(filepath.Join(dir, "overlay-containers/containers.json"), &containers); err != nil {
		return "", err
	}
	for _, c := range containers {
		if c.ID == id {
			root := filepath.Join("/proc/1/root", dir, "overlay", c.Layer, "merged")
			if _, err := os.Stat(filepath.Join(root, "usr")); err != nil {
				return "", fmt.Errorf("container %s's root is not mounted on the host at %s: %w", id, root, err)
			}
			return root, nil
		}
	}
	return "", fmt.Errorf("no container %s in %s", id, dir)
}

func readJSON(file string, v any) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("reading %s: %w", file, err)
	}
	return nil
}

// sameFile fails unless a and b are the same folder.
func sameFile(a, b string) error {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	if err1 != nil || err2 != nil || !os.SameFile(fa, fb) {
		return fmt.Errorf("the container's %s is not the host's %s (%v, %v)", a, b, err1, err2)
	}
	return nil
}
