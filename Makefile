# Consent Center — the two commands are `make run` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask
PORT ?= 5000
export FLASK_APP := consent_center:create_app
TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/consent_center_test
export TEST_DATABASE_URL

.PHONY: run test setup vendor translations messages lint bench browser-deps clean \
	snapshots screenshots deploy-check soak systemd-deps

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed translations

translations: $(VENV)/.installed
	@$(VENV)/bin/pybabel compile -d translations >/dev/null

# Re-extract messages after changing text in code or templates, then translate the .po files.
messages: $(VENV)/.installed
	$(VENV)/bin/pybabel extract -F babel.cfg -k _l -k lazy_gettext --ignore-dirs=".venv tests bench" -o translations/messages.pot .
	$(VENV)/bin/pybabel update -i translations/messages.pot -d translations --no-fuzzy-matching

vendor:
	./scripts/vendor.sh

# Production is the default (it refuses to start without its settings); `make run` is the
# development server, with the dev mailbox. The tests name their own environment.
run: export CONSENT_CENTER_ENV = development
run: setup
	$(FLASK) db upgrade
	$(FLASK) demo seed
	@$(PY) -m consent_center.devserver --port $(PORT)

browser-deps:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; }

# systemd-analyze checks the unit files in deploy/systemd (tests/test_deploy.py).
systemd-deps:
	@command -v systemd-analyze >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null; }

# The suite must leave the checkout as it found it (tree_state.py compares before and after).
test: setup browser-deps systemd-deps
	$(PY) scripts/ensure_test_database.py
	@state=$$(mktemp) && $(PY) scripts/tree_state.py > $$state \
	  && $(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS) \
	  && $(PY) scripts/tree_state.py --check $$state; status=$$?; rm -f $$state; exit $$status

# Rewrite tests/snapshots (email and SMS bodies) from the templates; review the diff, commit.
snapshots: setup
	UPDATE_SNAPSHOTS=1 $(PY) -m pytest -n 0 -q tests/test_message_snapshots.py \
	  -k "sqlite or every_message_kind"

# Rewrite docs/screenshots with Chromium, and picture every page at 375 and 1280 px in both
# languages into test-results/screenshots (git-ignored); look at them, commit docs/screenshots.
screenshots: setup browser-deps
	UPDATE_SCREENSHOTS=1 $(PY) -m pytest -n 0 -q tests/browser/test_pages.py \
	  tests/browser/test_screenshots.py

lint: setup
	$(VENV)/bin/ruff check .

# deploy/systemd through `systemd-analyze verify` (installs Debian's systemd if missing) and
# gunicorn.conf.py through gunicorn's own check (docs/deploy.md). `make test` runs the same
# checks wherever systemd-analyze is present.
deploy-check: setup systemd-deps
	$(PY) -m pytest -n 0 -q tests/test_deploy.py

bench: setup
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(PY) bench/run.py --rounds 3 $(BENCH_ARGS)
	$(PY) bench/outbox_bench.py
	$(PY) bench/api_bench.py
	$(PY) bench/dashboard_bench.py
	$(PY) bench/floor_bench.py
	$(PY) bench/signin_timing.py

# The soak-and-chaos run (docs/soak.md): the production stack on this machine under Locust
# traffic while workers, SMTP, Twilio, PostgreSQL connections and Redis fail on a schedule;
# exits 1 if an invariant failed. SOAK_ARGS="--minutes 2 --members 2000" for the short one.
soak: setup
	$(PY) -m soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) instance/*.db instance/dev_mailbox .pytest_cache
