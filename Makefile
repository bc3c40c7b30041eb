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

# seedbuild's own image: its one name, in local storage, and an archive of
# it that the tests load.
IMAGE         ?= localhost/seedbuild/seedbuild:latest
IMAGE_ARCHIVE := bin/seedbuild-image.tar

DEMO_DIR    ?= /var/tmp/seedbuild-demo
BENCH_DIR   ?= /var/tmp/seedbuild-bench
BENCH_SCALE ?= 1

.PHONY: all build build-test image test crash unit e2e demo bench vet fmt check clean deps fuzz docs

all: build

build:
	$(GO) build $(GOFLAGS_ALL) -ldflags "$(LDFLAGS)" -o bin/seedbuild ./cmd/seedbuild
	@echo "bin/seedbuild: $$(($$(stat -c %s bin/seedbuild) / 1048576)) MiB, statically linked"

# The test build: the same binary plus the failpoints the tests drive
# (SEEDBUILD_INJECT_FAILURE, SEEDBUILD_INJECT_HANG, SEEDBUILD_INJECT_PAUSE).
# Never ship it.
build-test:
	$(GO) build -tags "$(TAGS) seedbuild_failpoints" -ldflags "$(LDFLAGS)" -o bin/seedbuild-test ./cmd/seedbuild

# seedbuild's own image (contrib/image/Containerfile), built by seedbuild
# into local storage as $(IMAGE) and written to $(IMAGE_ARCHIVE).
image: build
	rm -rf bin/image-context && mkdir -p bin/image-context
	cp bin/seedbuild /usr/bin/busybox contrib/image/policy.json /etc/ssl/certs/ca-certificates.crt bin/image-context/
	bin/seedbuild build --no-lint -f contrib/image/Containerfile --build-arg VERSION=$(VERSION) \
	  --annotation org.opencontainers.image.title=seedbuild --annotation org.opencontainers.image.version=$(VERSION) \
	  --annotation org.opencontainers.image.revision=$$(git rev-parse HEAD 2>/dev/null || echo unknown) \
	  -t $(IMAGE) -o oci-archive:$(IMAGE_ARCHIVE) bin/image-context >/dev/null
	@echo "$(IMAGE): $$(($$(stat -c %s $(IMAGE_ARCHIVE)) / 1048576)) MiB as $(IMAGE_ARCHIVE)"

deps:
	hack/install-deps.sh

# Everything: dependencies, build, unit and end-to-end tests.
test: deps build build-test image
	SEEDBUILD_BIN=$(CURDIR)/bin/seedbuild-test SEEDBUILD_RELEASE_BIN=$(CURDIR)/bin/seedbuild SEEDBUILD_IMAGE_ARCHIVE=$(CURDIR)/$(IMAGE_ARCHIVE) GO=$(GO) hack/test.sh $(GOFLAGS_ALL) -count=1 -timeout 87m

# The power cuts on a booted node, every copy booted, and five random
# flush points of its deploy more; the classic seed's deploy recorded on a
# booted node too, seven of its flush points booted; every flush point of
# the host-recorded native and classic deploys checked (make test boots
# and checks a sample; docs/reliability.md). Not part of CI. Run side by
# side, its parts took 23 and 27 minutes (the host's native and classic
# recordings, which run first here) and 66 minutes (the booted tests).
crash: deps build build-test
	SEEDBUILD_BIN=$(CURDIR)/bin/seedbuild-test SEEDBUILD_RELEASE_BIN=$(CURDIR)/bin/seedbuild SEEDBUILD_BOOT_ALL_CUTS=1 SEEDBUILD_FLUSH_ALL=1 \
	  $(GO) test $(GOFLAGS_ALL) -count=1 -timeout 150m -v -parallel 8 -run '^(TestBootedPowerCuts|TestBootedClassicFlushPoints|TestDeployFlushPoints)$$' ./tests

unit:
	$(GO) test $(GOFLAGS_ALL) -count=1 $$($(GO) list ./... | grep -v /tests)

vet:
	$(GO) vet $(GOFLAGS_ALL) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# Style, as CI checks it before make test: gofmt has nothing to change,
# and go vet and staticcheck find nothing (their cgo type-check needs the
# deps). staticcheck's version is pinned by the tool directive of
# tools/go.mod, a module of its own, so it adds nothing to seedbuild's.
check: deps
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(GOFLAGS_ALL) ./...
	cd tools && $(GO) build -o ../bin/staticcheck honnef.co/go/tools/cmd/staticcheck
	bin/staticcheck $(GOFLAGS_ALL) ./...

demo: deps build image
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
