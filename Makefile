# MiniMall: `make run` starts the whole platform on embedded defaults, `make test` runs every suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.lock requirements-dev.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install protos protos-check lint run stop test test-long test-unit test-integration test-e2e test-reliability test-deploy audit k8s bench clean

install: $(STAMP)

$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.lock
	# The repo root (services/, gateway/) and gen/ (generated protobuf code) go on the venv's path.
	printf '%s\n%s\n' "$(CURDIR)" "$(CURDIR)/gen" \
	  > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/minimall.pth"
	test -d gen/mall || $(PY) tools/gen_protos.py
	rm -f $(VENV)/.installed-* && touch $@

protos: install
	$(PY) tools/gen_protos.py

protos-check: install
	$(PY) tools/gen_protos.py --check

lint: install
	$(PY) -m ruff check .

run: install
	$(PY) -m tools.devrun

stop:
	@if [ -x $(PY) ]; then $(PY) -m tools.devrun stop; else echo "MiniMall is not installed here"; fi

# pytest exits 5 when it collected no test: for us that is a broken suite, never a pass.
# Two workers (the machine has two cores), a test file to one worker; each worker that runs e2e
# tests starts its own platform (xdist's loadgroup cannot group by nodeid under pytest 9).
# --durations: the slowest tests, named at the end of every run, for keeping the suite within its 15 minutes.
# Every test but the battery's long runs (marker `long`), which `make test-long` and `make test-reliability` run.
test: protos-check lint
	@$(PY) -m pytest -n 2 --dist loadfile --durations=30 -m "not long" tests; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests"; fi; exit $$status

# The battery's long runs that `make test` leaves out (schemathesis over every operation four ways, the broker
# paused 30 s, the database restarted each second): .ci/run runs them after `make test`, so CI runs every test once.
# Test by test (--dist load): the four contract runs of one file would otherwise all wait for one worker.
test-long: install
	@$(PY) -m pytest -n 2 --dist load --durations=10 -m long tests; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test-long: pytest collected no tests"; fi; exit $$status

# The whole reliability battery of issue 14 (tests/reliability/catalogue.py lists each item's tests), long runs too.
test-reliability: install
	@$(PY) -m pytest -n 2 --dist loadfile -m reliability tests; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test-reliability: pytest collected no tests"; fi; exit $$status

# Cross-service invariants (stock, coupons, ledgers, events, outboxes) of the platform `make run` started.
audit: install
	$(PY) -m tools.audit

test-unit: install
	$(PY) -m pytest tests/unit

test-integration: install
	$(PY) -m pytest tests/integration

test-e2e: install
	$(PY) -m pytest tests/e2e

# Manifests, images, alert rules and dashboards (needs kubectl and promtool; .ci/run installs them).
test-deploy: install
	$(PY) -m pytest tests/deploy

# Regenerate the per-service manifests of deploy/k8s/base from services/common.
k8s: install
	$(PY) deploy/k8s/generate.py

bench: install
	$(PY) -m bench

clean:
	rm -rf var .pytest_cache
