# crux_tracking: set up, test, try and benchmark the add-on.
# Odoo 18 and PostgreSQL are prerequisites (see README.md).

PYTHON ?= python3
DB ?= crux_tracking_test
BUILD ?= .build
ADDONS_DIR := $(BUILD)/addons
MODULE_LINK := $(ADDONS_DIR)/crux_tracking
EXTRA_MODULES ?= sale_mrp
PGHOST ?= 127.0.0.1
export PGHOST

.PHONY: setup test lint install-db pytest uninstall-check wheel-check run run-headless bench sandbox clean addons-path

setup:  ## install the project's own tools and check Odoo 18 and PostgreSQL
	$(PYTHON) tools/check_prereqs.py
	$(PYTHON) -m pip install -q -r requirements-dev.txt
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "setup: installing Debian's chromium for the browser test"; \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) >/dev/null \
	  || { echo "setup: could not install chromium (needed by the browser test)" >&2; exit 1; }; }
	@echo "setup: done"

$(MODULE_LINK):
	mkdir -p $(ADDONS_DIR)
	ln -sfn $(CURDIR) $(MODULE_LINK)

addons-path: $(MODULE_LINK)
	@$(PYTHON) tools/odoo_addons_path.py $(ADDONS_DIR)

install-db: $(MODULE_LINK)  ## fresh throw-away database with the module installed
	dropdb --if-exists $(DB)
	$(PYTHON) tools/install_db.py --db $(DB) --addons-path "$$($(PYTHON) tools/odoo_addons_path.py $(ADDONS_DIR))" --modules crux_tracking,$(EXTRA_MODULES)

pytest: $(MODULE_LINK)
	PYTHONPATH=$(CURDIR)/tools $(PYTHON) -m pytest -p no:cacheprovider -p pytest_no_skips -q -rs \
	  --odoo-database=$(DB) --odoo-http \
	  --odoo-addons-path="$$($(PYTHON) tools/odoo_addons_path.py $(ADDONS_DIR))" \
	  $(MODULE_LINK)/tests

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m pylint --rcfile=.pylintrc-mandatory $$(git ls-files '*.py' '__manifest__.py' | grep -v '^tools/\|^sandbox/\|^bench/')

uninstall-check: $(MODULE_LINK)  ## uninstall the add-on from the test database: no error, nothing left
	$(PYTHON) tools/uninstall_check.py --db $(DB) --addons-path "$$($(PYTHON) tools/odoo_addons_path.py $(ADDONS_DIR))"

wheel-check:  ## the add-on builds as a wheel that carries its views, data and security
	$(PYTHON) tools/build_wheel.py

test: lint wheel-check install-db pytest uninstall-check  ## everything: lint, wheel, fresh database, whole suite, uninstall
	@echo "test: all checks passed"

sandbox:  ## the local Crux sandbox with seeded orders
	$(PYTHON) sandbox/crux_sandbox.py --port 8765 --token sandbox-token

clean:
	rm -rf $(BUILD)
	dropdb --if-exists $(DB)

run: $(MODULE_LINK)  ## try it: Crux sandbox + demo database + Odoo on http://127.0.0.1:8069 (Ctrl-C stops)
	$(PYTHON) tools/demo.py --addons-path "$$($(PYTHON) tools/odoo_addons_path.py $(ADDONS_DIR))" $(DEMO_ARGS)

run-headless: $(MODULE_LINK)  ## the demo without a browser: validate over JSON-RPC, check the package_uuid
	$(PYTHON) tools/demo.py --headless --addons-path "$$($(PYTHON) tools/odoo_addons_path.py $(ADDONS_DIR))" $(DEMO_ARGS)

bench: $(MODULE_LINK)  ## benchmark against the local Crux sandbox, own database (BENCH_ARGS=--quick: smoke run)
	$(PYTHON) bench/bench_crux.py --db crux_tracking_bench --addons-path "$$($(PYTHON) tools/odoo_addons_path.py $(ADDONS_DIR))" $(BENCH_ARGS)
