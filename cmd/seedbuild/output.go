package main

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"text/template"

	"github.com/spf13/cobra"
)

// writeJSON writes v as indented JSON, the --json output of every command.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// formatFlags are --json and --format, as podman has them: --format json is
// --json, and any other --format is a Go template over the command's
// result, whose fields are the Go names (--format '{{.Digest}}').
type formatFlags struct {
	asJSON bool
	format string
	tmpl   *template.Template
}

// templateFuncs are the functions a --format template may call, podman's
// usual ones.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"join":  strings.Join,
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
}

// add registers both flags; what names the result in their help.
func (f *formatFlags) add(cmd *cobra.Command, what string) {
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print "+what+" as JSON (the same as --format json)")
	cmd.Flags().StringVar(&f.format, "format", "", "print "+what+" as json, or through a Go template such as '{{.Digest}}' (fields as in the JSON, by their Go names; funcs json, join, lower, upper)")
}

// parse checks --format before any work is done: a template that does not
// parse, or one given with --json, is bad usage.
func (f *formatFlags) parse() error {
	switch {
	case f.format == "":
		return nil
	case strings.EqualFold(f.format, "json"):
		f.asJSON = true
		return nil
	case f.asJSON:
		return usagef("--json and --format %q ask for two outputs; give one", f.format)
	}
	t, err := template.New("--format").Funcs(templateFuncs).Option("missingkey=error").Parse(f.format)
	if err != nil {
		return usagef("invalid --format %q: %v", f.format, err)
	}
	f.tmpl = t
	return nil
}

// structured is true when the result goes out as JSON or a template rather
// than as text for people.
func (f *formatFlags) structured() bool { return f.asJSON || f.tmpl != nil }

// write prints v as JSON or through the template, which gets a final
// newline when it has none, as podman's does. A template that names a field
// v lacks is bad usage.
func (f *formatFlags) write(w io.Writer, v any) error {
	if f.tmpl == nil {
		return writeJSON(w, v)
	}
	var b bytes.Buffer
	if err := f.tmpl.Execute(&b, v); err != nil {
		return usagef("--format %q: %v", f.format, err)
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\n")) {
		b.WriteByte('\n')
	}
	_, err := w.Write(b.Bytes())
	return err
}
