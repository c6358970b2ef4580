# The two commands: `make run` starts the suite, `make test` runs every test.
# Both set up what they need on a fresh machine.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CACHE := .cache
SPARK_RUNTIME_VERSION := 0.46.15
BUF_VERSION := 1.75.0

.PHONY: run test install install-dev test-deps protos lint bench clean

run: install
	$(PY) -m services

test: install-dev test-deps
	$(PY) -m pytest

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Re-install when the dependencies change.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	$(PY) -m tools.repair_protos
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m tools.repair_protos
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# Redis, openssl and protoc-gen-swagger (Debian), buf (npm) and the published @github/spark runtime (npm) for the tests.
test-deps: $(CACHE)/node/node_modules/.bin/buf $(CACHE)/spark-runtime/package/dist/db.js
	@command -v redis-server >/dev/null && command -v openssl >/dev/null && command -v protoc-gen-swagger >/dev/null || { \
		echo "installing redis-server, openssl and golang-grpc-gateway"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq redis-server openssl golang-grpc-gateway >/dev/null; }

$(CACHE)/node/node_modules/.bin/buf:
	mkdir -p $(CACHE)/node
	npm install --silent --no-audit --no-fund --prefix $(CACHE)/node @bufbuild/buf@$(BUF_VERSION)

$(CACHE)/spark-runtime/package/dist/db.js:
	mkdir -p $(CACHE)/spark-runtime
	cd $(CACHE)/spark-runtime && npm pack --silent @github/spark@$(SPARK_RUNTIME_VERSION) >/dev/null \
		&& tar xzf github-spark-$(SPARK_RUNTIME_VERSION).tgz
	touch $@

# Regenerate the committed stubs and the edge's descriptor set after editing protos/.
protos: install-dev
	$(PY) -m tools.protogen

lint: install-dev test-deps
	$(PY) -m ruff check .
	$(PY) -m mypy services edge tools benchmarks fuzz
	$(PY) -m tools.buflint

# wrk, redis-benchmark and webdis (Debian) for the benchmarks; LiteLLM and Portkey install themselves on first use.
bench: install-dev test-deps
	@command -v wrk >/dev/null && command -v redis-benchmark >/dev/null && command -v webdis >/dev/null || { \
		echo "installing wrk, redis-tools and webdis"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq wrk redis-tools webdis >/dev/null; }
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) $(CACHE) var
