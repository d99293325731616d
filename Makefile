# mount-ws build, test and demo targets. Outputs go to bin/ (ignored by git).
GO      ?= go
BIN     := bin
# Where "make demo" keeps the local workspace's data (ignored by git).
DEMO_DATA ?= .ws-dev

.PHONY: build test lint check-deps demo bench soak clean install

## install: put mount-ws in $(PREFIX)/bin, where mount(8) finds it for
## "mount -t fuse.mount-ws" and fstab lines (mount.fuse3 runs it with a
## fixed PATH). PREFIX defaults to /usr/local.
PREFIX ?= /usr/local
install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN)/mount-ws $(DESTDIR)$(PREFIX)/bin/mount-ws

## build: compile every command into bin/, stamped with the commit
## (mount-ws --version), also where the toolchain records none (-buildvcs=false).
## In an export (git archive), .commit holds the commit instead.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || grep -x '[0-9a-f]\{7,\}' .commit 2>/dev/null || echo unknown)
build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN)/ ./cmd/...

## test: lint, then every test with the race detector. -count=1 so cached
## results never hide a flaky test; -timeout well inside CI's limit.
test: lint
	$(GO) test -race -count=1 -timeout 20m ./...

## lint: gofmt (lists unformatted files and fails), go.mod tidy, go vet,
## staticcheck (a pinned version, fetched by the go command), import direction.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint: check-deps
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff || { echo "go.mod or go.sum is not tidy: run go mod tidy"; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## check-deps: mount-ws must not link the S3 server; packages import one way.
check-deps:
	@./scripts/check-deps.sh

## demo: the local workspace with demo data, mounted at ./mnt (Ctrl-C stops).
demo: build
	DEMO_DATA=$(DEMO_DATA) BIN=$(BIN) ./scripts/demo.sh

## bench: mount-ws, s3fs and rclone (when installed) against the AWS SDK on
## a local workspace; needs root and /dev/fuse; results in docs/BENCHMARKS.md.
## BENCH_FLAGS passes flags to ws-bench, e.g. BENCH_FLAGS=-quick for a short
## run, or "-data DIR -keep" to seed once and reuse the data.
BENCH_FLAGS ?=
bench: build
	$(BIN)/ws-bench $(BENCH_FLAGS)

## soak: the chaos and soak run (not part of test or CI): one mount-ws under
## random API and S3 faults with 1 s credentials, a workload checked against
## a model, then the bucket compared byte for byte; needs root and /dev/fuse;
## results in docs/RELIABILITY.md. SOAK_FLAGS passes flags to ws-soak, e.g.
## SOAK_FLAGS="-duration 1h -seed 7 -json soak.json"; the default runs 2 minutes.
SOAK_FLAGS ?=
soak: build
	$(BIN)/ws-soak $(SOAK_FLAGS)

clean:
	rm -rf $(BIN)
