# o4o-operator: two commands matter. `make dev` runs the operator locally;
# `make test` installs what it needs and passes the tests. Both work on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PYTHON := $(VENV)/bin/python
PYTEST_ARGS ?=
# make dev HOSTS=sandbox keeps the shim world; make dev SOURCE=<git URL or local path> deploys another repository.
HOSTS ?= booted
SOURCE ?=
# Debian packages the tests use, as "command:package" (installed only where the command is missing).
DEBIAN_TOOLS := sshd:openssh-server ssh:openssh-client nginx:nginx shellcheck:shellcheck \
	promtool:prometheus lua5.1:lua5.1 chromium:chromium git:git certbot:certbot dig:bind9-dnsutils \
	debootstrap:debootstrap systemd-nspawn:systemd-container tinyproxy:tinyproxy ip:iproute2 curl:curl \
	cc:gcc podman:podman runc:runc

.PHONY: help venv lock lock-check debian-packages testbin lint test screenshot dev bench clean

help:
	@echo "make dev      run the local control plane, local cloud, booted Debian hosts, Pebble, operator and dashboard"
	@echo "              until Ctrl-C (HOSTS=sandbox: the shim world; SOURCE=<git URL or path>: another repository)"
	@echo "make test     install everything needed (venv, Debian packages, control plane) and run all checks"
	@echo "make testbin  print the directory holding kube-apiserver, etcd and kubectl (building them if missing)"
	@echo "make screenshot  refresh docs/dashboard.png from the dashboard in headless chromium"
	@echo "make lock     upgrade uv.lock (all packages; UPGRADE=name for one)"
	@echo "make bench    run the benchmarks in bench/ and write bench/results/*.json"

# Every Python package comes from uv.lock (hashes included): a release upstream never changes what
# installs here. uv itself is pinned by version and hash, and lives outside the checkout.
UV_VERSION := 0.13.9
UV_SHA256 := d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19 \
	ecb6028d79dc96fbeafffe5c8af62a7099487ebc05a701e76714eebcffd06375
UV_HOME := $(HOME)/.cache/o4o/uv-$(UV_VERSION)
UV := $(UV_HOME)/bin/uv
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export UV_PYTHON_DOWNLOADS := never
export O4O_UV := $(UV)
# make lock upgrades every package; make lock UPGRADE=name upgrades that one (and what it needs).
UPGRADE ?=

$(UV):
	@rm -rf $(UV_HOME).tmp && python3 -m venv $(UV_HOME).tmp
	@$(UV_HOME).tmp/bin/pip install --quiet --disable-pip-version-check --require-hashes \
		-r <(echo "uv==$(UV_VERSION) $(addprefix --hash=sha256:,$(UV_SHA256))")
	@rm -rf $(UV_HOME) && mv $(UV_HOME).tmp $(UV_HOME)

# --locked: installs exactly uv.lock, and fails if uv.lock no longer matches pyproject.toml.
$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --all-extras --python python3 --quiet
	@touch $@

lock: $(UV)
	$(UV) lock $(if $(UPGRADE),--upgrade-package "$(UPGRADE)",--upgrade)

lock-check: $(UV)
	@$(UV) lock --check --quiet || { echo "uv.lock does not match pyproject.toml: run make lock" >&2; exit 1; }

venv: $(VENV)/.installed

debian-packages:
	@missing=""; for pair in $(DEBIAN_TOOLS); do \
		command -v "$${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/$${pair%%:*}" ] || missing="$$missing $${pair##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:$$missing"; \
		sudo_cmd=""; [ "$$(id -u)" = 0 ] || sudo_cmd="sudo"; \
		$$sudo_cmd apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo_cmd apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

testbin:
	@python3 operator/o4o_operator/testing/testbin.py

lint: venv lock-check
	$(VENV)/bin/ruff check operator dashboard tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The suite runs on TEST_WORKERS xdist workers (most tests wait on processes, SSH and timers, not the CPU);
# tests/conftest.py hands out whole modules, so each world is made once, and booted hosts go to one worker.
TEST_WORKERS ?= 4
test: venv debian-packages
	@KUBEBUILDER_ASSETS="$$(python3 operator/o4o_operator/testing/testbin.py)" && export KUBEBUILDER_ASSETS && \
	{ $(PYTHON) -m o4o_operator.testing.assets & assets=$$!; } && \
	{ $(MAKE) --no-print-directory lint; linted=$$?; wait $$assets; built=$$?; } && \
	[ $$linted = 0 ] && [ $$built = 0 ] && \
	$(PYTHON) -m pytest -n $(TEST_WORKERS) --no-loadscope-reorder --durations=25 $(PYTEST_ARGS)

# Refreshes docs/dashboard.png (tests never write into the source tree).
screenshot: venv debian-packages
	@KUBEBUILDER_ASSETS="$$(python3 operator/o4o_operator/testing/testbin.py)" && export KUBEBUILDER_ASSETS && \
	artifacts="$$(mktemp -d)" && \
	O4O_ARTIFACTS="$$artifacts" $(PYTHON) -m pytest -q -p no:cacheprovider \
		"tests/dashboard/test_dashboard_browser.py::test_readme_screenshot" && \
	cp "$$artifacts/dashboard.png" docs/dashboard.png && rm -rf "$$artifacts" && echo "docs/dashboard.png refreshed"

dev: venv debian-packages
	@KUBEBUILDER_ASSETS="$$(python3 operator/o4o_operator/testing/testbin.py)" && export KUBEBUILDER_ASSETS && \
	exec $(PYTHON) -m o4o_operator.testing.dev --hosts "$(HOSTS)" $(if $(SOURCE),--source "$(SOURCE)")

# BENCH_ARGS passes options through, e.g. make bench BENCH_ARGS="--only P2,P4 --idle-seconds 20"
bench: venv debian-packages
	@KUBEBUILDER_ASSETS="$$(python3 operator/o4o_operator/testing/testbin.py)" && export KUBEBUILDER_ASSETS && \
	$(PYTHON) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
