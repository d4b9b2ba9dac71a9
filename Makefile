# Two commands do everything on a fresh Debian machine: `make demo` and `make test`.
# Both install what they need first (`make install`): the Debian packages and the virtualenv.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEBS   := mosquitto mosquitto_sub:mosquitto-clients socat mbpoll systemd-analyze:systemd chromium:chromium
# A Chinese font, so the web page's screenshot in the browser test shows characters, not empty boxes: FILE:PACKAGE.
FONTS  := /usr/share/fonts/truetype/wqy/wqy-microhei.ttc:fonts-wqy-microhei
# Shared libraries the lab loads through ctypes, SONAME:PACKAGE: the reference platform checks Ed25519 signatures
# with libsodium (lab/simulators/platform/ed25519.py).
LIBS   := libsodium.so.23:libsodium23
DEMO_SECONDS ?= 150
DEMO_DIR ?= demo-run

.PHONY: install debs demo test lint bench clean

install: debs $(STAMP)

# Installs the Debian packages the simulators and tests use, only when one is missing.
# An entry is a command, or COMMAND:PACKAGE when the package that brings it has another name.
debs:
	@missing=""; \
	for entry in $(DEBS); do command -v $${entry%%:*} >/dev/null 2>&1 || missing="$$missing $${entry#*:}"; done; \
	$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	for font in $(FONTS); do [ -e "$${font%%:*}" ] || missing="$$missing $${font#*:}"; done; \
	for lib in $(LIBS); do /sbin/ldconfig -p | grep -qF "$${lib%%:*} (" || missing="$$missing $${lib#*:}"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO="sudo"; \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

# Two distributions, both editable: the gateway's (pyproject.toml: agent, drivers) and the lab's
# (lab/pyproject.toml: the simulators, the demo, the benchmarks, the schema generator).
$(STAMP): pyproject.toml lab/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' -e ./lab
	touch $(STAMP)

demo: install
	$(BIN)/station-agent demo --seconds $(DEMO_SECONDS) --workdir $(DEMO_DIR)

lint: install
	$(BIN)/ruff check agent drivers lab tests
	$(BIN)/ruff format --check agent drivers lab tests
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: install
	@$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache build *.egg-info lab/*.egg-info

# Regenerates the contract's JSON Schemas in docs/contract/schemas/ from the record bodies in agent/contract/records.py
# (the generator is the lab's: lab/station_lab/contract_docs.py).
.PHONY: schemas
schemas: install
	$(BIN)/python -m station_lab.contract_docs

# The agent SIGKILLed 100 times on a bad day (broker restarts, a flapping link, poisoned acks and commands) while a
# simulated forecourt sells; then the platform's books checked (bench/soak.py). JSON on stdout; not in `make test`.
.PHONY: soak
soak: install
	@$(BIN)/python -m bench.soak $(if $(SOAK_KILLS),--kills $(SOAK_KILLS))

# Detection quality of the leak and unrecorded-sales detector on simulated tank-months (docs/detection.md).
.PHONY: bench-detect
bench-detect: install
	@$(BIN)/python -m bench.detect

# The Debian package an installer flashes: build/deb/station-agent_<version>_<arch>.deb (packaging/build-deb.sh).
# DEB_ARCH=arm64 builds for a gateway of another architecture.
.PHONY: deb
deb: install
	packaging/build-deb.sh $(if $(DEB_ARCH),--arch $(DEB_ARCH))

# pip-tools: pure Python in the venv, pip's own resolver, and --generate-hashes records every file of a release.
# The runtime dependencies pinned with the sha256 of every file of each release on PyPI (the amd64 and arm64
# wheels alike), which `make deb` downloads with --require-hashes. Refresh after a change of pyproject's
# dependencies, or to take their new releases.
.PHONY: lock
lock: install
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
		--no-emit-index-url --no-emit-find-links --no-emit-trusted-host --upgrade \
		--output-file packaging/requirements.lock pyproject.toml packaging/requirements.in

# The system test (tests/system/, README "Tests on a real Debian box"): the package installed and driven under
# systemd in a Debian 12 container — install, start, crash, hang, bad input, journal, upgrade, reboot, remove.
# Needs root; installs debootstrap and systemd-nspawn when missing; caches its Debian root under build/system/.
SYSTEM_DEBS := debootstrap systemd-nspawn:systemd-container nsenter:util-linux
.PHONY: system-test
system-test: install
	@$(MAKE) --no-print-directory debs DEBS="$(SYSTEM_DEBS)"
	STATION_AGENT_SYSTEM_TEST=1 $(BIN)/pytest -v -s -p no:cacheprovider tests/system
