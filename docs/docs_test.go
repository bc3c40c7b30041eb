// Package docs holds seedbuild's Markdown documentation and the man pages;
// its only Go is this test, which checks that the pages' relative links
// lead somewhere.
package docs

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	// link is an inline Markdown link or image, [text](target) or
	// [text](target "title"); group 1 is the target.
	link = regexp.MustCompile(`\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	// codeSpan is inline code, whose brackets are not links.
	codeSpan = regexp.MustCompile("`[^`\n]*`")
)

// markdownFiles are README.md and every Markdown page in docs/.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{filepath.Join("..", "README.md")}, files...)
}

// relativeLinks returns the targets of the links in a Markdown text that
// name a file: not a web or mail address, not a pure #anchor, without any
// #fragment. Fenced code blocks are left out, and code spans in the text are
// blanked (so that [`create`](x) is still a link, and `a[i](j)` is not).
func relativeLinks(text string) []string {
	var out []string
	fenced := false
	for _, line := range strings.Split(text, "\n") {
		if trimmed := strings.TrimSpace(line); strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		line = codeSpan.ReplaceAllString(line, "x")
		for _, m := range link.FindAllStringSubmatch(line, -1) {
			target := m[1]
			lower := strings.ToLower(target)
			if strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://") || strings.HasPrefix(lower, "mailto:") || strings.HasPrefix(target, "#") {
				continue
			}
			if i := strings.IndexByte(target, '#'); i >= 0 {
				target = target[:i]
			}
			if p, err := url.PathUnescape(target); err == nil {
				target = p
			}
			out = append(out, target)
		}
	}
	return out
}

func TestRelativeLinksResolve(t *testing.T) {
	files := markdownFiles(t)
	if len(files) < 2 {
		t.Fatalf("found %v: want README.md and the pages in docs/", files)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			for _, target := range relativeLinks(string(data)) {
				path := filepath.Join(filepath.Dir(file), filepath.FromSlash(target))
				if _, err := os.Stat(path); err != nil {
					t.Errorf("link %q in %s: no such file", target, file)
				}
			}
		})
	}
}

func TestRelativeLinks(t *testing.T) {
	text := "See [a](a.md), [b](sub/b.md#part \"title\"), [`c`](man/c.1), ![img](<img.png>),\n" +
		"[web](https://example.com/x.md), [mail](mailto:x@example.com), [here](#anchor),\n" +
		"`code [x](not-a-link.md)`, [spaced](d%20e.md).\n" +
		"```\n[fenced](not-a-link-either.md)\n```\n"
	got := strings.Join(relativeLinks(text), " ")
	if want := "a.md sub/b.md man/c.1 img.png d e.md"; got != want {
		t.Errorf("relativeLinks = %q, want %q", got, want)
	}
}
