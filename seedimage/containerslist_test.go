package seedimage

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseContainersListAndByTag(t *testing.T) {
	digest := "quay.io/a/b@sha256:" + strings.Repeat("0", 64)
	list := ParseContainersList("# a comment\n\n" + digest + "\nquay.io/a/c:v1\n  quay.io/a/c:v1  \nquay.io/a/d\n")
	if want := []string{digest, "quay.io/a/c:v1", "quay.io/a/d"}; !cmp.Equal(list, want) {
		t.Errorf("ParseContainersList() = %q, want %q (no comments, blanks or repeats)", list, want)
	}
	if got, want := ByTag(list), []string{"quay.io/a/c:v1", "quay.io/a/d"}; !cmp.Equal(got, want) {
		t.Errorf("ByTag() = %q, want %q", got, want)
	}
	if got := ByTag(nil); got == nil || len(got) != 0 {
		t.Errorf("ByTag(nil) = %#v, want an empty list (JSON [])", got)
	}
}
