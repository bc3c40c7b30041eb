# seedbuild. The build tags live here and only here: build, test, bench
# and vet all use them.
GO          ?= go
TAGS        := containers_image_openpgp exclude_graphdriver_btrfs netgo osusergo
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The binary is static (netgo, osusergo, and the C parts linked in with
# -static), so it runs on any x86_64 Linux whatever its libc: RHCOS's glibc
# is older than Debian's. The linker's warning about dlopen in a static
# binary comes from ocicrypt's PKCS#11 support, which seedbuild never uses.
LDFLAGS     := -s -w -X main.version=$(VERSION) -linkmode external -extldflags -static
GOFLAGS_ALL := -tags "$(TAGS)"
export CGO_ENABLED := 1

DEMO_DIR    ?= /var/tmp/seedbuild-demo
BENCH_DIR   ?= /var/tmp/seedbuild-bench
BENCH_SCALE ?= 1

.PHONY: all build build-test test unit e2e demo bench vet fmt clean deps fuzz docs

all: build

build:
	$(GO) build $(GOFLAGS_ALL) -ldflags "$(LDFLAGS)" -o bin/seedbuild ./cmd/seedbuild
	@echo "bin/seedbuild: $$(($$(stat -c %s bin/seedbuild) / 1048576)) MiB, statically linked"

# The test build: the same binary plus the failpoints the tests drive
# (SEEDBUILD_INJECT_FAILURE, SEEDBUILD_INJECT_HANG). Never ship it.
build-test:
	$(GO) build -tags "$(TAGS) seedbuild_failpoints" -ldflags "$(LDFLAGS)" -o bin/seedbuild-test ./cmd/seedbuild

deps:
	hack/install-deps.sh

# Everything: dependencies, build, unit and end-to-end tests.
test: deps build build-test
	SEEDBUILD_BIN=$(CURDIR)/bin/seedbuild-test SEEDBUILD_RELEASE_BIN=$(CURDIR)/bin/seedbuild $(GO) test $(GOFLAGS_ALL) -count=1 -timeout 70m ./...

unit:
	$(GO) test $(GOFLAGS_ALL) -count=1 $$($(GO) list ./... | grep -v /tests)

vet:
	$(GO) vet $(GOFLAGS_ALL) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

demo: deps build
	DEMO_DIR=$(DEMO_DIR) hack/demo.sh

bench: deps build
	BENCH_DIR=$(BENCH_DIR) BENCH_SCALE=$(BENCH_SCALE) hack/bench.sh

# Man pages, from the cobra tree; make test checks that they are current.
docs: build
	rm -rf docs/man
	bin/seedbuild gen-man docs/man >/dev/null

# Each fuzz target runs for FUZZTIME; their seed corpora also run in make test.
FUZZTIME ?= 60s
FUZZ_TARGETS := labels:FuzzParse labels:FuzzClusterInfo frontend:FuzzLintContainerfile seedimage:FuzzReadArchive internal/kargsd:FuzzParse

fuzz:
	@for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; fn=$${t#*:}; \
	  echo "fuzz: $$pkg $$fn for $(FUZZTIME)"; \
	  $(GO) test $(GOFLAGS_ALL) -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 10x ./$$pkg || exit 1; \
	done

clean:
	rm -rf bin
