# corebackup.backup: `make demo` runs the main job against local stand-in services,
# `make test` runs every test. Both set up what they need (venv, system packages, ansible-test
# bootstrap) on a fresh machine.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3.11
VENV ?= $(CURDIR)/.venv
BIN := $(VENV)/bin
SECANTUS_VENV ?= $(CURDIR)/.venv-secantus
BUILD := $(CURDIR)/.build
COLLECTIONS := $(BUILD)/collections
COLL := $(COLLECTIONS)/ansible_collections/corebackup/backup
PYTEST_ARGS ?=
PYTEST_PATHS ?= tests/unit tests/integration
export PYTHONDONTWRITEBYTECODE := 1
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export PATH := $(BIN):$(PATH)
export SECANTUS_PYTHON := $(SECANTUS_VENV)/bin/python
# GitHub's public GraphQL schema (npm @octokit/graphql-schema); the GitHub stand-in's schema is checked against it.
OCTOKIT_SCHEMA_VERSION := 15.26.1
OCTOKIT_SCHEMA_DIR := $(CURDIR)/.cache/octokit-graphql-schema
export OCTOKIT_SCHEMA := $(OCTOKIT_SCHEMA_DIR)/package/schema.graphql
# promtool, which tests the alert rules of extensions/prometheus/: the binary alone, out of Debian's prometheus package.
PROMTOOL_DIR ?= $(CURDIR)/.cache/promtool
export PROMTOOL := $(PROMTOOL_DIR)/promtool

.PHONY: test unit demo setup system-deps octokit-schema promtool tree sanity pytest molecule lint changelog-lint bench clean

test: setup tree sanity pytest molecule lint changelog-lint
	@echo "make test: all checks passed"

demo: setup tree
	cd $(COLL) && PYTHONPATH=$(COLLECTIONS) $(BIN)/python -m ansible_collections.corebackup.backup.tests.testbed.demo \
		$(CURDIR) $(CURDIR)/.demo

setup: system-deps $(VENV)/.installed $(SECANTUS_VENV)/.installed $(HOME)/.ansible/test/cache/get_pip_24_2.py octokit-schema \
	promtool

system-deps:
	@bash tests/testbed/install-system-deps.sh

# The npm package, unpacked into .cache/ (git-ignored), once per version: $(OCTOKIT_SCHEMA).
octokit-schema: system-deps
	@if ! grep -qs '"version": "$(OCTOKIT_SCHEMA_VERSION)"' $(OCTOKIT_SCHEMA_DIR)/package/package.json \
		|| [ ! -s $(OCTOKIT_SCHEMA) ]; then \
		rm -rf $(OCTOKIT_SCHEMA_DIR) && mkdir -p $(OCTOKIT_SCHEMA_DIR) && cd $(OCTOKIT_SCHEMA_DIR) \
		&& npm pack --silent @octokit/graphql-schema@$(OCTOKIT_SCHEMA_VERSION) >/dev/null \
		&& tar -xzf octokit-graphql-schema-$(OCTOKIT_SCHEMA_VERSION).tgz && rm octokit-graphql-schema-$(OCTOKIT_SCHEMA_VERSION).tgz; \
	fi

# Into .cache/ (git-ignored), once: apt-get download + dpkg-deb -x, never apt-get install (see the script).
promtool: system-deps
	@bash tests/testbed/install-promtool.sh $(PROMTOOL_DIR)

$(VENV)/.installed: tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

# The MongoDB-compatible server of the tests, in a venv of its own.
$(SECANTUS_VENV)/.installed: tests/requirements-secantus.txt
	$(PYTHON) -m venv $(SECANTUS_VENV)
	$(SECANTUS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r tests/requirements-secantus.txt
	touch $@

# ansible-test bootstraps its sanity venvs with a get-pip script it would download from a host
# that is not reachable here; give it an offline equivalent and the pip wheel from PyPI.
$(HOME)/.ansible/test/cache/get_pip_24_2.py: tests/testbed/get_pip_24_2.py $(VENV)/.installed
	mkdir -p $(@D)
	$(BIN)/python -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
		--dest $(@D) pip==24.2
	cp tests/testbed/get_pip_24_2.py $@

tree:
	$(BIN)/python tests/testbed/collection_tree.py $(CURDIR) $(COLLECTIONS) >/dev/null

sanity: tree
	cd $(COLL) && $(BIN)/ansible-test sanity --color no --python 3.11

# Two workers, each test file on one of them (its module fixtures and order kept; each worker starts the
# session's services once): most tests wait on subprocesses, simulated latency and services, not on a core.
PYTEST_WORKERS ?= -n 2 --dist loadfile --durations=25
pytest: tree
	cd $(COLL) && PYTHONPATH=$(COLLECTIONS) $(BIN)/python -m pytest -p no:cacheprovider \
		--import-mode=importlib --timeout 600 -o console_output_style=classic $(PYTEST_WORKERS) $(PYTEST_PATHS) $(PYTEST_ARGS)

# The fast tier for your own loop: unit tests only (pure logic and fakes), about half a minute.
unit: PYTEST_PATHS = tests/unit
unit: PYTEST_WORKERS =
unit: pytest

# The backup role converged twice on this machine (extensions/molecule/default): idempotence and verify.
molecule: tree
	cd $(COLL) && ANSIBLE_HOME=$(BUILD)/ansible-home MOLECULE_PYTHON=$(BIN)/python $(BIN)/molecule test

# ANSIBLE_HOME of their own: ansible-lint and molecule would otherwise prefer a copy of this collection
# installed in ~/.ansible/collections (an older release, say) to the tree under test.
lint: tree
	cd $(COLL) && ANSIBLE_HOME=$(BUILD)/ansible-home $(BIN)/ansible-lint --offline --profile production

changelog-lint: tree
	cd $(COLL) && $(BIN)/antsibull-changelog lint

# python-github-backup, the point of comparison of bench/bench_github.py, in a venv of its own under .cache/ (git-ignored).
GHB_VENV ?= $(CURDIR)/.cache/ghb-venv
$(GHB_VENV)/.installed: bench/requirements-ghb.txt
	$(PYTHON) -m venv $(GHB_VENV)
	$(GHB_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r bench/requirements-ghb.txt
	touch $@

bench: setup tree $(GHB_VENV)/.installed
	cd $(COLL) && status=0; \
	PYTHONPATH=$(COLLECTIONS) $(BIN)/python bench/bench_pipeline.py --results $(CURDIR)/bench/results || status=1; \
	GHB_PYTHON=$(GHB_VENV)/bin/python PYTHONPATH=$(COLLECTIONS) $(BIN)/python bench/bench_github.py --results $(CURDIR)/bench/results || status=1; \
	PYTHONPATH=$(COLLECTIONS) $(BIN)/python bench/bench_volume.py --results $(CURDIR)/bench/results || status=1; \
	PYTHONPATH=$(COLLECTIONS) $(BIN)/python bench/bench_mongo.py --results $(CURDIR)/bench/results || status=1; \
	PYTHONPATH=$(COLLECTIONS) $(BIN)/python bench/bench_postgres.py --results $(CURDIR)/bench/results || status=1; \
	PYTHONPATH=$(COLLECTIONS) $(BIN)/python bench/bench_restore.py --results $(CURDIR)/bench/results || status=1; \
	PYTHONPATH=$(COLLECTIONS) $(BIN)/python bench/bench_retention.py --results $(CURDIR)/bench/results || status=1; \
	PYTHONPATH=$(COLLECTIONS) $(BIN)/python bench/bench_storage_growth.py --results $(CURDIR)/bench/results || status=1; \
	PYTHONPATH=$(COLLECTIONS) $(BIN)/python bench/bench_change.py --results $(CURDIR)/bench/results || status=1; \
	PYTHONPATH=$(COLLECTIONS) $(BIN)/python bench/bench_s3_upload.py --results $(CURDIR)/bench/results || status=1; \
	PYTHONPATH=$(COLLECTIONS) $(BIN)/python bench/bench_memory.py --results $(CURDIR)/bench/results || status=1; \
	exit $$status

clean:
	rm -rf $(BUILD) .demo
