package tests

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func contribFile(t *testing.T, rel string) string {
	t.Helper()
	return readFile(t, filepath.Join(repoRoot, "contrib", rel))
}

var longFlag = regexp.MustCompile(`(?:^|\s)(--[a-z][a-z0-9-]*)`)

// checkFlags fails for each --flag in line that `seedbuild SUB --help`
// does not list.
func checkFlags(t *testing.T, sub, line string) {
	t.Helper()
	help := mustSeedbuild(t, sub, "--help").stdout
	for _, m := range longFlag.FindAllStringSubmatch(line, -1) {
		if !strings.Contains(help, m[1]+" ") {
			t.Errorf("%q uses %s, which seedbuild %s does not have", line, m[1], sub)
		}
	}
}

// seedbuildLines are the seedbuild command lines of a script.
func seedbuildLines(script string) []string {
	var out []string
	for _, l := range strings.Split(script, "\n") {
		l = strings.TrimSpace(l)
		if i := strings.Index(l, "seedbuild "); i >= 0 && !strings.HasPrefix(l, "#") {
			out = append(out, l[i:])
		}
	}
	return out
}

func TestContribSystemdUnit(t *testing.T) {
	unit := contribFile(t, "systemd/seedbuild-create.service")
	sections := map[string]map[string]string{}
	cur := ""
	for _, l := range strings.Split(unit, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "["):
			cur = strings.Trim(l, "[]")
			sections[cur] = map[string]string{}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || cur == "" {
				t.Fatalf("bad unit line %q", l)
			}
			sections[cur][k] = v
		}
	}
	for sec, keys := range map[string][]string{"Unit": {"Description", "After"}, "Service": {"Type", "ExecStart", "EnvironmentFile"}, "Install": {"WantedBy"}} {
		for _, k := range keys {
			if sections[sec][k] == "" {
				t.Errorf("[%s] lacks %s", sec, k)
			}
		}
	}
	exec := sections["Service"]["ExecStart"]
	if sections["Service"]["Type"] != "oneshot" || !strings.HasPrefix(exec, "/usr/local/bin/seedbuild create ") || !strings.Contains(exec, "--output docker://") {
		t.Errorf("ExecStart = %q, want a oneshot seedbuild create that pushes", exec)
	}
	checkFlags(t, "create", exec)
	env := contribFile(t, "systemd/seed.env.example")
	for _, v := range []string{"SEED_IMAGE=", "SEED_AUTHFILE=", "SEED_CLUSTER_INFO="} {
		if !strings.Contains(env, v) {
			t.Errorf("seed.env.example lacks %s", v)
		}
	}
}

type k8sObject struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   map[string]any `json:"metadata"`
	Spec       map[string]any `json:"spec"`
}

func parseYAML(t *testing.T, rel string) k8sObject {
	t.Helper()
	var o k8sObject
	if err := yaml.UnmarshalStrict([]byte(contribFile(t, rel)), &o); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return o
}

// dig walks a decoded YAML document by keys and list indexes.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func TestContribKubernetesJob(t *testing.T) {
	job := parseYAML(t, "kubernetes/configured-seed-job.yaml")
	if job.APIVersion != "batch/v1" || job.Kind != "Job" {
		t.Fatalf("kind = %s/%s, want batch/v1 Job", job.APIVersion, job.Kind)
	}
	pod := dig(job.Spec, "template", "spec")
	c := dig(pod, "containers", 0)
	if dig(c, "securityContext", "privileged") != true {
		t.Errorf("the container is not privileged")
	}
	mounts := map[string]string{}
	for _, m := range dig(c, "volumeMounts").([]any) {
		mounts[dig(m, "mountPath").(string)] = dig(m, "name").(string)
	}
	volumes := map[string]any{}
	for _, v := range dig(pod, "volumes").([]any) {
		volumes[dig(v, "name").(string)] = v
	}
	if v := volumes[mounts["/var/lib/containers"]]; dig(v, "emptyDir") == nil {
		t.Errorf("/var/lib/containers is not an emptyDir")
	}
	if v := volumes[mounts["/run/secrets/registry"]]; dig(v, "secret", "secretName") == nil {
		t.Errorf("the registry auth is not a mounted secret")
	}
	script := dig(c, "args", 0).(string)
	lines := seedbuildLines(script)
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "seedbuild containerfile") || !strings.HasPrefix(lines[1], "seedbuild build") {
		t.Fatalf("the Job's script = %q, want seedbuild containerfile then seedbuild build", script)
	}
	checkFlags(t, "containerfile", lines[0])
	checkFlags(t, "build", lines[1])

	// TestContribInImage runs the Job's container in seedbuild's image.
}

func TestContribTekton(t *testing.T) {
	task := parseYAML(t, "tekton/configured-seed-task.yaml")
	if task.APIVersion != "tekton.dev/v1" || task.Kind != "Task" {
		t.Fatalf("task kind = %s/%s", task.APIVersion, task.Kind)
	}
	params := map[string]bool{}
	for _, p := range dig(task.Spec, "params").([]any) {
		params[dig(p, "name").(string)] = true
	}
	for _, want := range []string{"seed", "image"} {
		if !params[want] {
			t.Errorf("the Task lacks param %s", want)
		}
	}
	step := dig(task.Spec, "steps", 0)
	if dig(step, "securityContext", "privileged") != true {
		t.Errorf("the Task's step is not privileged")
	}
	lines := seedbuildLines(dig(step, "script").(string))
	if len(lines) != 2 {
		t.Fatalf("the Task's script has %d seedbuild lines, want 2", len(lines))
	}
	checkFlags(t, "containerfile", lines[0])
	checkFlags(t, "build", lines[1])
	taskWorkspaces := map[string]bool{}
	for _, w := range dig(task.Spec, "workspaces").([]any) {
		taskWorkspaces[dig(w, "name").(string)] = true
	}

	pipe := parseYAML(t, "tekton/configured-seeds-pipeline.yaml")
	if pipe.Kind != "Pipeline" {
		t.Fatalf("pipeline kind = %s", pipe.Kind)
	}
	tasks := dig(pipe.Spec, "tasks").([]any)
	if len(tasks) < 2 {
		t.Errorf("the Pipeline runs %d tasks, want several in parallel", len(tasks))
	}
	for _, pt := range tasks {
		if dig(pt, "taskRef", "name") != task.Metadata["name"] {
			t.Errorf("pipeline task %v does not use the Task", dig(pt, "name"))
		}
		if dig(pt, "runAfter") != nil {
			t.Errorf("pipeline task %v waits for another; they should run in parallel", dig(pt, "name"))
		}
		for _, p := range dig(pt, "params").([]any) {
			if !params[dig(p, "name").(string)] {
				t.Errorf("pipeline passes unknown param %v", dig(p, "name"))
			}
		}
		for _, w := range dig(pt, "workspaces").([]any) {
			if !taskWorkspaces[dig(w, "name").(string)] {
				t.Errorf("pipeline binds unknown workspace %v", dig(w, "name"))
			}
		}
	}
}

func TestContribExamples(t *testing.T) {
	f := getFixtures(t)
	st := busyboxBase(t)
	mustSeedbuild(t, st.flags("create", "-q", "--rootfs", f.root, "--base", "localhost/busybase:latest", "--tag", "seed:examples")...)
	ctx := t.TempDir()
	writeFiles(t, ctx, map[string]string{
		"cluster-configuration/manifest.json":  `{"clusterName":"example"}`,
		"seedbuild-cluster-configuration.conf": "L+ /var/opt/openshift/cluster-configuration - - - - /usr/opt/openshift/cluster-configuration\n",
		"payload/bin/tool":                     "#!/bin/sh\necho tool\n",
		"payload/payload.service":              "[Service]\nExecStart=/usr/lib/payload/bin/tool\n",
		"payload/60-payload.toml":              `kargs = ["payload=1"]` + "\n",
	})
	for _, name := range []string{"configured-seed.Containerfile", "payload-seed.Containerfile"} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(repoRoot, "contrib/examples", name)
			r := seedbuild(t, nil, st.flags("lint", "--strict", "-f", file)...)
			if r.code != 0 {
				t.Errorf("lint --strict %s: %s", name, r)
			}
			out := filepath.Join(t.TempDir(), "image.tar")
			mustSeedbuild(t, st.flags("build", "--build-arg", "SEED=localhost/seed:examples", "-f", file, "-o", "oci-archive:"+out, ctx)...)
			if d := inspect(t, "oci-archive:"+out); d.Kind != "native" {
				t.Errorf("%s builds an image that inspects as %q", name, d.Kind)
			}
		})
	}
}

// TestManPagesCurrent regenerates the man pages and compares them with the
// ones in docs/man: run `make docs` after changing a command.
func TestManPagesCurrent(t *testing.T) {
	dir := t.TempDir()
	mustSeedbuild(t, "gen-man", dir)
	want, _ := filepath.Glob(filepath.Join(repoRoot, "docs/man/*.1"))
	got, _ := filepath.Glob(filepath.Join(dir, "*.1"))
	if len(got) == 0 || len(got) != len(want) {
		t.Fatalf("gen-man wrote %d pages, docs/man has %d: run make docs", len(got), len(want))
	}
	for _, g := range got {
		name := filepath.Base(g)
		if readFile(t, g) != readFile(t, filepath.Join(repoRoot, "docs/man", name)) {
			t.Errorf("docs/man/%s is out of date: run make docs", name)
		}
	}
}

// TestCompletion completes commands, flags and local image names.
func TestCompletion(t *testing.T) {
	f := getFixtures(t)
	st := newStore(t)
	mustSeedbuild(t, st.flags("create", "-q", "--rootfs", f.root, "--base", "oci-archive:"+f.base, "--tag", "seed:complete")...)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"__complete", "dep"}, "deploy"},
		{[]string{"__complete", "deploy", "--state"}, "--stateroot"},
		{st.flags("__complete", "inspect", "localhost/seed:c"), "localhost/seed:complete"},
		{st.flags("__complete", "deploy", ""), "localhost/seed:complete"},
	}
	for _, tt := range tests {
		r := mustSeedbuild(t, tt.args...)
		if !strings.Contains(r.stdout, tt.want) {
			t.Errorf("seedbuild %v completes %q, want %s", tt.args, r.stdout, tt.want)
		}
	}
	if r := mustSeedbuild(t, "completion", "bash"); !strings.Contains(r.stdout, "__start_seedbuild") {
		t.Errorf("completion bash does not print a bash completion script")
	}
}

// TestInfo reports the store, registries.conf, the podman service and the
// deploy tools, as JSON.
func TestInfo(t *testing.T) {
	st := newStore(t)
	r := mustSeedbuild(t, st.flags("info", "--json", "--podman-url", "unix:///nonexistent/podman.sock")...)
	var info struct {
		GraphRoot       string `json:"graph_root"`
		RegistriesConf  string `json:"registries_conf"`
		PodmanAnswers   bool   `json:"podman_answers"`
		Ostree          string `json:"ostree"`
		OstreeContainer bool   `json:"ostree_container"`
	}
	if err := yaml.Unmarshal([]byte(r.stdout), &info); err != nil {
		t.Fatalf("info --json: %v\n%s", err, r.stdout)
	}
	if info.GraphRoot != st.root || info.RegistriesConf == "" || info.PodmanAnswers || !regexp.MustCompile(`^20[0-9]{2}\.[0-9]+$`).MatchString(info.Ostree) {
		t.Errorf("info = %+v", info)
	}
	url := startPodman(t, st)
	r = mustSeedbuild(t, st.flags("info", "--podman-url", url)...)
	if !strings.Contains(r.stdout, "answers: yes") {
		t.Errorf("info with a running podman service:\n%s", r.stdout)
	}
}
