# Avila Analytics: build, test and run.
#
#   make build   the three binaries into bin/
#   make test    go vet, then every test (unit, integration, end-to-end)
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

.PHONY: all build test vet lint demo demo-deps bench clean

all: build

build:
	$(GO) build -o $(BIN)/ $(COMMANDS)

vet:
	$(GO) vet ./...

# Tests that need PostgreSQL or Redis use DATABASE_URL/REDIS_URL when set, else
# start throwaway servers from the system's binaries (internal/testenv).
test: vet
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

# The demo runs its own PostgreSQL from the system's initdb/pg_ctl unless
# DATABASE_URL is set; install the server package when it is missing.
demo-deps:
	@command -v $(GO) >/dev/null 2>&1 || { \
		echo "demo: Go not found: install Go (the version named in go.mod) into /usr/local/go or put it on PATH" >&2; exit 1; }
	@if [ -n "$$DATABASE_URL" ]; then \
		echo "demo: DATABASE_URL is set; using that PostgreSQL" >&2; \
	elif command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "demo: installing PostgreSQL with apt-get" >&2; \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; } >&2; \
	else \
		echo "demo: PostgreSQL's initdb and pg_ctl were not found." >&2; \
		echo "demo: install the server package (Debian/Ubuntu: sudo apt-get install postgresql)" >&2; \
		echo "demo: or set DATABASE_URL to an existing server, then run make demo again." >&2; \
		exit 1; \
	fi

bench:
	@$(MAKE) --no-print-directory demo-deps
	@command -v wrk >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "bench: installing wrk with apt-get"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >/dev/null 2>&1 || \
			{ apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >/dev/null 2>&1; } || \
			echo "bench: wrk could not be installed; using the harness's own Go load generator"; \
		else \
			echo "bench: wrk not found; using the harness's own Go load generator (Debian: apt-get install wrk)"; \
		fi; }
	$(GO) run ./bench/cmd/avila-bench $(if $(QUICK),-quick) $(if $(PHASES),-phases $(PHASES),-out bench/results.json)

clean:
	rm -rf $(BIN)
