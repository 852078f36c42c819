# Avila Analytics: build, test and run.
#
#   make build   the three binaries into bin/
#   make test    install what is missing, go vet, then every test (unit, integration, end-to-end)
#   make lint    gofmt, go vet, staticcheck
#   make demo    install what is missing, build, run `avila demo $(DEMO_ARGS)`
#   make bench   the benchmark harness
#   make clean   remove build output

# The official Go tarball installs into /usr/local/go; find it without a login shell.
export PATH := $(PATH):/usr/local/go/bin

GO                  ?= go
BIN                 := bin
COMMANDS            := ./cmd/avila-agent ./cmd/avila-aggregator ./cmd/avila
TEST_TIMEOUT        ?= 20m
DEMO_ARGS           ?=
STATICCHECK_VERSION := v0.8.2
GOBIN_DIR           := $(or $(shell $(GO) env GOBIN 2>/dev/null),$(shell $(GO) env GOPATH 2>/dev/null)/bin)
STATICCHECK         := $(GOBIN_DIR)/staticcheck

.PHONY: all build test test-deps vet lint demo demo-deps go-check bench clean

all: build

build:
	$(GO) build -o $(BIN)/ $(COMMANDS)

vet:
	$(GO) vet ./...

# Tests that need PostgreSQL or Redis use DATABASE_URL/REDIS_URL when set, else
# start throwaway servers from the system's binaries (internal/testenv).
test: test-deps vet
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

lint: $(STATICCHECK)
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt: these files need formatting (run gofmt -w):"; echo "$$unformatted"; exit 1; \
	fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# stdout carries only the demo's one JSON line; progress goes to stderr.
demo: demo-deps
	@echo "$(GO) build -o $(BIN)/ $(COMMANDS)" >&2
	@$(GO) build -o $(BIN)/ $(COMMANDS)
	@echo "$(BIN)/avila demo $(DEMO_ARGS)" >&2
	@$(BIN)/avila demo $(DEMO_ARGS)

# System packages: installed with apt-get when missing and run as root, else
# named in one install line (deploy/system-deps.sh).
demo-deps: go-check
	@bash deploy/system-deps.sh demo

test-deps: go-check
	@bash deploy/system-deps.sh test

go-check:
	@command -v $(GO) >/dev/null 2>&1 || { \
		echo "Go not found: install Go (the version named in go.mod) into /usr/local/go or put it on PATH" >&2; exit 1; }

bench: go-check
	@bash deploy/system-deps.sh bench
	$(GO) run ./bench/cmd/avila-bench $(if $(QUICK),-quick) $(if $(PHASES),-phases $(PHASES),-out bench/results.json)

clean:
	rm -rf $(BIN)
