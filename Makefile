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
	debootstrap:debootstrap systemd-nspawn:systemd-container tinyproxy:tinyproxy ip:iproute2 curl:curl

.PHONY: help venv debian-packages testbin lint test test-fast dev bench clean

help:
	@echo "make dev      run the local control plane, local cloud, booted Debian hosts, Pebble, operator and dashboard"
	@echo "              until Ctrl-C (HOSTS=sandbox: the shim world; SOURCE=<git URL or path>: another repository)"
	@echo "make test     install everything needed (venv, Debian packages, control plane) and run all checks"
	@echo "make testbin  print the directory holding kube-apiserver, etcd and kubectl (building them if missing)"
	@echo "make bench    run the benchmarks in bench/ and write bench/results/*.json"

$(VENV)/.installed: pyproject.toml
	@test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[test,dev]'
	@touch $@

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

lint: venv
	$(VENV)/bin/ruff check operator dashboard tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: venv debian-packages
	@KUBEBUILDER_ASSETS="$$(python3 operator/o4o_operator/testing/testbin.py)" && export KUBEBUILDER_ASSETS && \
	$(MAKE) --no-print-directory lint && \
	$(PYTHON) -m pytest $(PYTEST_ARGS)

dev: venv debian-packages
	@KUBEBUILDER_ASSETS="$$(python3 operator/o4o_operator/testing/testbin.py)" && export KUBEBUILDER_ASSETS && \
	exec $(PYTHON) -m o4o_operator.testing.dev --hosts "$(HOSTS)" $(if $(SOURCE),--source "$(SOURCE)")

$(VENV)/.bench-installed: $(VENV)/.installed pyproject.toml
	$(PYTHON) -m pip install --quiet -e '.[test,dev,bench]'
	@touch $@

# BENCH_ARGS passes options through, e.g. make bench BENCH_ARGS="--only P2,P4 --idle-seconds 20"
bench: venv debian-packages $(VENV)/.bench-installed
	@KUBEBUILDER_ASSETS="$$(python3 operator/o4o_operator/testing/testbin.py)" && export KUBEBUILDER_ASSETS && \
	$(PYTHON) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
