# The two commands: `make run` starts the suite, `make test` runs every test.
# Both set up what they need on a fresh machine, from the locks only:
# requirements/{run,dev}.txt (exact versions, hash-checked) and tools/node/package-lock.json.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
NODE_TOOLS := tools/node

# pip reads only the locks and the index: no machine-wide pip.conf, find-links or constraints.
export PIP_CONFIG_FILE := /dev/null
export PIP_DISABLE_PIP_VERSION_CHECK := 1
unexport PIP_FIND_LINKS PIP_CONSTRAINT PIP_REQUIRE_VIRTUALENV
PIP_INSTALL := $(PY) -m pip install --quiet --require-hashes

DEBIAN_TEST_PACKAGES := redis-server openssl golang-grpc-gateway curl jq chromium
DEBIAN_BENCH_PACKAGES := wrk redis-tools webdis nginx-light

.PHONY: run test install install-dev test-deps debian-test-deps protos lint lock bench clean

run: install
	$(PY) -m launcher

test: install-dev test-deps
	$(PY) -m pytest

# Debian splits venv out of python3; install it when missing.
$(PY):
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { rm -rf $(VENV); echo "installing python3-venv"; \
		$(call apt_get,python3-venv); $(PYTHON) -m venv $(VENV); }

# Re-install when a lock changes: first the installer and the build backend (requirements/pip.txt), then
# the packages, building the few that ship only sources with that locked backend (--no-build-isolation),
# so nothing is fetched unhashed. The checkout itself is linked in (tools/link_source.py), not built.
$(VENV)/.installed: requirements/pip.txt requirements/run.txt | $(PY)
	$(PIP_INSTALL) -r requirements/pip.txt
	$(PIP_INSTALL) --no-build-isolation -r requirements/run.txt
	$(PY) -m tools.link_source
	touch $@

$(VENV)/.installed-dev: requirements/pip.txt requirements/dev.txt | $(PY)
	$(PIP_INSTALL) -r requirements/pip.txt
	$(PIP_INSTALL) --no-build-isolation -r requirements/dev.txt
	$(PY) -m tools.link_source
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# Regenerate both locks after editing the dependencies in pyproject.toml. To move one
# dependency to its newest allowed release: make lock UPGRADE=openai; everything: make lock UPGRADE=all
lock: install-dev
	$(PY) -m tools.lock $(if $(filter all,$(UPGRADE)),--upgrade,$(if $(UPGRADE),--upgrade-package $(UPGRADE)))

# Debian packages the tests start (Redis, openssl, protoc-gen-swagger; curl and jq for the README's examples),
# and the npm tools (buf, the Spark runtime).
test-deps: debian-test-deps $(NODE_TOOLS)/node_modules/.installed

debian-test-deps:
	@$(call debian_packages,$(DEBIAN_TEST_PACKAGES))

$(NODE_TOOLS)/node_modules/.installed: $(NODE_TOOLS)/package-lock.json
	# From inside the folder, not with --prefix: --prefix moves npm's global config (the machine's registry and
	# certificate settings, /usr/etc/npmrc) to a folder of the project that has none.
	cd $(NODE_TOOLS) && npm ci --omit=peer --silent --no-audit --no-fund
	touch $@

# Regenerate the committed stubs and the edge's descriptor set after editing protos/.
protos: install-dev
	$(PY) -m tools.protogen

lint: install-dev test-deps
	$(PY) -m ruff check .
	$(PY) -m mypy services edge launcher tools benchmarks fuzz
	$(PY) -m tools.buflint

# wrk, redis-benchmark and webdis (Debian) for the benchmarks; LiteLLM and Portkey install themselves on first use.
bench: install-dev test-deps
	@$(call debian_packages,$(DEBIAN_BENCH_PACKAGES))
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) $(NODE_TOOLS)/node_modules .cache var

# Installs those of the Debian packages $(1) that are missing.
debian_packages = for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing$$missing"; $(call apt_get,$$missing); fi

# apt-get as root, or through sudo.
apt_get = SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(1) >/dev/null
