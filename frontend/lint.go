// Package frontend turns Containerfiles into findings, build contexts and
// images: lint (seed and bootc rules), containerfile (configured seeds) and
// build (buildah's imagebuildah, embedded).
package frontend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/seedbuild/seedbuild/internal/kargsd"
	"github.com/seedbuild/seedbuild/labels"
)

// Severity of a finding.
type Severity string

// The severities.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
)

// Finding is one lint result.
type Finding struct {
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	File     string   `json:"file"`
	Line     int      `json:"line"`
	Message  string   `json:"message"`
	Hint     string   `json:"hint"`
}

func (f Finding) String() string {
	loc := f.File
	if f.Line > 0 {
		loc += ":" + strconv.Itoa(f.Line)
	}
	return fmt.Sprintf("%s: %s %s: %s (%s)", loc, f.Severity, f.Rule, f.Message, f.Hint)
}

// Rule IDs for Containerfiles.
const (
	RuleSyntax          = "SB001"
	RuleUnknown         = "SB002"
	RuleNotBootcBase    = "SB010"
	RuleSeedLabel       = "SB011"
	RuleOstreeLabel     = "SB012"
	RuleWritesVar       = "SB013"
	RuleVolatileContent = "SB014"
	RuleBadKargs        = "SB015"
	RuleAddURL          = "SB016"
	RuleSeedEtc         = "SB017"
	RuleBaseUnreadable  = "SB018"
)

// LabelReader reads an image's labels; it returns an error when the image
// cannot be read, and then the rules that need labels are skipped.
type LabelReader func(ctx context.Context, image string) (map[string]string, error)

// LintOptions say where the build context is and how to read base images.
type LintOptions struct {
	// ContextDir is read for the files COPY sends, such as kargs.d TOML.
	ContextDir string
	// Labels reads a base image's labels; nil skips the base rules.
	Labels LabelReader
}

// HasErrors reports whether any finding is an error (or, strict, a warning).
func HasErrors(findings []Finding, strict bool) bool {
	for _, f := range findings {
		if f.Severity == Error || strict {
			return true
		}
	}
	return false
}

// LintContainerfile checks a Containerfile against the seed and bootc
// rules. name is the file name findings carry.
func LintContainerfile(ctx context.Context, name string, data []byte, o LintOptions) []Finding {
	l := &linter{file: name, opts: o}
	if !utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0 {
		l.add(RuleSyntax, Error, firstBadLine(data), "the file is not UTF-8 text", "give a Containerfile, not a binary file")
		return l.findings
	}
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		l.add(RuleSyntax, Error, errorLine(err), oneLine(err.Error()), "fix the syntax at this line")
		return l.findings
	}
	for _, node := range res.AST.Children {
		l.node(ctx, node)
	}
	sort.SliceStable(l.findings, func(i, j int) bool { return l.findings[i].Line < l.findings[j].Line })
	return l.findings
}

type linter struct {
	file     string
	opts     LintOptions
	findings []Finding
	stages   map[string]bool
	// seedBase is whether the current stage is FROM a seed image.
	seedBase bool
}

func (l *linter) add(rule string, sev Severity, line int, msg, hint string) {
	l.findings = append(l.findings, Finding{Rule: rule, Severity: sev, File: l.file, Line: line, Message: msg, Hint: hint})
}

func (l *linter) node(ctx context.Context, node *parser.Node) {
	cmd, err := instructions.ParseInstruction(node)
	if err != nil {
		var unknown *instructions.UnknownInstructionError
		if errors.As(err, &unknown) {
			l.add(RuleUnknown, Error, node.StartLine, fmt.Sprintf("unknown instruction %s", strings.ToUpper(unknown.Instruction)), "use a Containerfile instruction such as RUN, COPY or LABEL")
			return
		}
		l.add(RuleSyntax, Error, node.StartLine, oneLine(err.Error()), "fix the instruction's arguments")
		return
	}
	line := node.StartLine
	switch c := cmd.(type) {
	case *instructions.Stage:
		l.from(ctx, c, line)
	case *instructions.LabelCommand:
		for _, kv := range c.Labels {
			l.label(kv.Key, line)
		}
	case *instructions.CopyCommand:
		l.copyLike("COPY", c.SourcePaths, c.DestPath, c.From != "", line)
	case *instructions.AddCommand:
		for _, src := range c.SourcePaths {
			if isURL(src) {
				l.add(RuleAddURL, Warning, line, fmt.Sprintf("ADD fetches %s at build time, so the build is not reproducible", src), "download it beforehand and COPY it from the context, or pin it with --checksum")
			}
		}
		l.copyLike("ADD", c.SourcePaths, c.DestPath, false, line)
	case *instructions.RunCommand:
		l.run(strings.Join(c.CmdLine, " "), line)
	}
}

func (l *linter) from(ctx context.Context, s *instructions.Stage, line int) {
	if l.stages == nil {
		l.stages = map[string]bool{}
	}
	defer func() {
		if s.Name != "" {
			l.stages[strings.ToLower(s.Name)] = true
		}
	}()
	l.seedBase = false
	base := s.BaseName
	if base == "scratch" || l.stages[strings.ToLower(base)] || strings.Contains(base, "$") || l.opts.Labels == nil {
		return
	}
	lbls, err := l.opts.Labels(ctx, base)
	if err != nil {
		l.add(RuleBaseUnreadable, Warning, line, fmt.Sprintf("base %s could not be read, so SB010 was not checked: %v", base, err), "make the image reachable (local storage, or registry access with --authfile, --tls-verify, --cert-dir)")
		return
	}
	if _, ok := lbls[labels.FormatVersionLabel]; ok {
		l.seedBase = true
	}
	if !labels.IsBootcImage(lbls) {
		l.add(RuleNotBootcBase, Error, line, fmt.Sprintf("base %s is not a bootc image: it has neither containers.bootc nor ostree.bootable", base), "build FROM the cluster's OS image (a bootc image) or a seed made from it")
	}
}

func (l *linter) label(key string, line int) {
	switch {
	case strings.HasPrefix(key, "com.openshift.lifecycle-agent."):
		l.add(RuleSeedLabel, Error, line, fmt.Sprintf("label %s is written by hand", key), "let seedbuild create set the seed labels; they must match the seed's content")
	case key == "ostree.final-diffid" || key == "ostree.commit":
		l.add(RuleOstreeLabel, Error, line, fmt.Sprintf("label %s is set by hand", key), "leave ostree.* labels to ostree-ext; a wrong value breaks deploys")
	}
}

// volatileDirs are where image content is hidden or wiped at boot.
var volatileDirs = []string{"/run", "/tmp", "/boot"}

func (l *linter) copyLike(instr string, sources []string, dest string, fromStage bool, line int) {
	d := path.Clean("/" + dest)
	if under(d, "/var") {
		l.add(RuleWritesVar, Warning, line, fmt.Sprintf("%s writes into %s: /var content is applied only when a stateroot is first made", instr, dest), "ship defaults under /usr and create /var content with tmpfiles.d")
	}
	for _, v := range volatileDirs {
		if under(d, v) {
			l.add(RuleVolatileContent, Error, line, fmt.Sprintf("%s puts content in %s, which is hidden or wiped on the node", instr, v), "put it under /usr instead")
		}
	}
	if l.seedBase && under(d, "/etc") {
		l.add(RuleSeedEtc, Warning, line, fmt.Sprintf("%s writes into %s of a seed: the image's /etc becomes the node's /usr/etc defaults, and the next OS update's /etc merge drops files the node never changed", instr, dest), "put configuration under /usr (for example /usr/lib/tmpfiles.d or /usr/opt) and link it from there")
	}
	if !fromStage && l.opts.ContextDir != "" {
		l.kargsFiles(sources, d, line)
	}
}

// kargsFiles checks the TOML of kargs.d files a COPY sends.
func (l *linter) kargsFiles(sources []string, dest string, line int) {
	for _, src := range sources {
		if isURL(src) {
			continue
		}
		host := filepath.Join(l.opts.ContextDir, filepath.Clean("/"+src))
		target := dest
		if len(sources) > 1 || strings.HasSuffix(dest, "/") || !strings.HasSuffix(dest, ".toml") {
			target = path.Join(dest, path.Base(src))
		}
		if !under(target, labels.KargsDir) || !strings.HasSuffix(target, ".toml") {
			continue
		}
		data, err := os.ReadFile(host)
		if err != nil {
			continue
		}
		if _, _, err := kargsd.Parse(string(data)); err != nil {
			l.add(RuleBadKargs, Error, line, fmt.Sprintf("%s is not a valid kargs.d file: %v", src, err), `write kargs = ["arg1", "arg2"] and, optionally, match-architectures = ["x86_64"]`)
		}
	}
}

var varWrite = regexp.MustCompile(`(^|[\s=>"'])/var(/[^\s;&|"']*)?`)

func (l *linter) run(cmdline string, line int) {
	if m := varWrite.FindString(cmdline); m != "" {
		l.add(RuleWritesVar, Warning, line, "RUN touches /var: /var content is applied only when a stateroot is first made", "create /var content at boot with tmpfiles.d or a unit")
	}
}

func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "git@")
}

var lineRe = regexp.MustCompile(`line (\d+)`)

// errorLine finds the line of a parser error.
func errorLine(err error) int {
	var le *parser.LocationError
	if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
		return le.Locations[0][0].Start.Line
	}
	if m := lineRe.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

func firstBadLine(data []byte) int {
	line := 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 || r == 0 {
			return line
		}
		if r == '\n' {
			line++
		}
		i += size
	}
	return line
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
