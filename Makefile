# vault-plugin-secrets-wetix developer targets. `make help` lists them.
SHELL := /usr/bin/env bash

PLUGIN_NAME    := vault-plugin-secrets-wetix
MODULE         := github.com/wetix-oss/vault-plugin-secrets-wetix
# The plugin's semantic version, reported to Vault through RunningVersion and
# sent to WeTix in the User-Agent: the newer of the latest v* tag and the
# default in backend.go (the version being released), so a tag left on an
# older commit never stamps newer code. `make VERSION=v1.2.3 ...` overrides.
VERSION        ?= $(shell { git describe --tags --match 'v*' --abbrev=0 2>/dev/null; sed -n 's/^var Version = "\(.*\)"$$/\1/p' backend.go; } | sort -V | tail -n1)
BIN_DIR        := .bin
PLUGIN_BIN     := $(BIN_DIR)/plugins/$(PLUGIN_NAME)
VAULT_BIN      := $(BIN_DIR)/vault
LDFLAGS        := -s -w -X $(MODULE).Version=$(VERSION)
# make release: where the artifacts go (emptied first), for which platforms,
# and the time stamped in the zips (the commit's, so a rebuild matches).
DIST           ?= dist
PLATFORMS      ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 freebsd/amd64
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)
# Acceptance tests start real Vault servers; give the whole run room.
TEST_TIMEOUT   ?= 60m

# A Vault the user already has (VAULT_BINARY in the environment or on the
# command line) is handed to scripts/build-vault.sh, which links .bin/vault to
# it when its version is supported; the tests and the demo then run .bin/vault.
export USER_VAULT_BINARY := $(VAULT_BINARY)
export VAULT_BINARY := $(abspath $(VAULT_BIN))

.PHONY: help version release image build vault emulator sandbox-check test unit schedules fmt fmt-check vet check dev dev-down bench scale compat clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

version: ## Print the version make build and make release stamp
	@echo $(VERSION)

release: ## Zips per platform + SHA256SUMS (zips) + SHA256SUMS.binaries into DIST (dist/), reproducibly; docs/install.md
	rm -rf $(DIST)
	go run ./tools/release -version "$(VERSION)" -out "$(DIST)" -platforms "$(PLATFORMS)" -mtime "$(SOURCE_DATE_EPOCH)"

# Tagged as Vault looks it up: for a container plugin, Vault takes -version
# with its leading "v" trimmed as the image tag (v1.21.1 command/plugin_register.go).
IMAGE          ?= vault-plugin-secrets-wetix:$(patsubst v%,%,$(VERSION))

image: ## Container image (Dockerfile: the linux/amd64 release binary on scratch, non-root) tagged IMAGE; needs a docker daemon, pulls nothing
	$(MAKE) release PLATFORMS=linux/amd64
	docker build --build-arg VERSION="$(VERSION)" -t "$(IMAGE)" -f Dockerfile "$(DIST)"

build: ## Build the plugin binary into .bin/plugins/
	@mkdir -p $(BIN_DIR)/plugins
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o $(PLUGIN_BIN) ./cmd/$(PLUGIN_NAME)
	@sha256sum $(PLUGIN_BIN)

vault: ## .bin/vault: your Vault (VAULT_BINARY or PATH) if supported, else the pinned one, built once and cached
	scripts/build-vault.sh

emulator: ## Build the WeTix OAuth emulator into .bin/wetix-emulator
	go build -o $(BIN_DIR)/wetix-emulator ./cmd/wetix-emulator

# The credentials come from the environment (WETIX_CLIENT_ID,
# WETIX_CLIENT_SECRET or WETIX_CLIENT_SECRET_FILE, WETIX_SIGNING_KEY_FILE),
# never from make variables, which land in shell history and `ps`.
SANDBOX_REPORT ?= sandbox-check.md
sandbox-check: ## Ask the WeTix sandbox what the plugin assumes (docs/sandbox-check.md); report in SANDBOX_REPORT
	go run ./cmd/wetix-check -out "$(SANDBOX_REPORT)" $(CHECK_FLAGS)

alerts-check: ## promtool check + unit tests of the alert rules in docs/prometheus/ (fetches promtool from Debian once if it is not on PATH)
	scripts/alerts-check.sh

test: check vault ## Everything CI runs: gofmt, vet, unit + acceptance tests with -race
	go test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

unit: ## Unit tests only (no Vault binary needed): acceptance tests are skipped
	go test -race -count=1 -short ./...

# Random lifecycle schedules: CI runs seeds 1-300 as part of the unit tests;
# this runs as many as asked from any seed (a failure prints how to replay it).
SCHEDULES      ?= 10000
SEED           ?= $(shell date +%s)
PROFILE        ?=

schedules: ## Random lifecycle schedules: make schedules SCHEDULES=100000 [SEED=S] [PROFILE=uniform|window-servable|...]
	set -o pipefail; go test -race -count=1 -timeout 0 -v -run 'TestLifecycleSchedules$$' . -schedules=$(SCHEDULES) -seed=$(SEED) -schedule-profile=$(PROFILE) -schedule-failures=10 | grep -v '^=== RUN'

fmt: ## Format the code
	gofmt -w $$(git ls-files '*.go')

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet: ## go vet
	go vet ./...

check: fmt-check vet

dev: build vault emulator ## Run the demo: emulator + Vault dev server + mounted plugin (Ctrl-C stops)
	scripts/dev.sh up

dev-down: ## Stop the demo started by `make dev`
	scripts/dev.sh down

bench: build vault ## Benchmarks; prints a table and writes docs/benchmarks.md
	scripts/bench.sh

# Not part of `make test`. Each cell is SCALE_DURATION (10m) of load plus
# about a minute; the default five cells take about 55 minutes.
scale: build vault ## Scale envelope: leases and Vault memory per lease option at SCALE_RATE reads/s, direct and via Vault Proxy; writes docs/scale.md
	VERSION=$(VERSION) scripts/scale.sh

# Not part of `make test`: CI tests only the pinned Vault. Builds each Vault in
# tools/vault/compat-versions (~15-20 min each, cold, on 2 cores; cached after).
compat: ## Build each Vault in tools/vault/compat-versions, run the acceptance core on it; writes docs/compat.md
	scripts/compat.sh

clean: ## Remove built binaries (keeps the cached Vault)
	rm -rf $(BIN_DIR)/plugins $(BIN_DIR)/wetix-emulator
