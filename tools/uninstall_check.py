"""Uninstall the add-on from a database and check that it leaves nothing behind.

Run on the test database after the suite (it holds transfers, Crux packages and
request logs by then): the uninstall must log no error and no warning from the
module, and afterwards no table, column, model, view, menu, scheduled action or
settings field of the add-on may remain. Exit 1 with what is left otherwise.
"""

import argparse
import logging
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--db", required=True)
parser.add_argument("--addons-path", required=True)
args = parser.parse_args()

import odoo  # noqa: E402
from odoo.modules.registry import Registry  # noqa: E402
from odoo.tools import config  # noqa: E402

MODULE = "crux_tracking"
TABLES = ["crux_package", "crux_package_line", "crux_request_log"]
COLUMNS = [
    "stock_picking",
    "res_company",
    "sale_order",
    "sale_order_line",
    "delivery_carrier",
    "stock_quant_package",
    "res_config_settings",
]


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.bad = []

    def emit(self, record):
        text = record.getMessage()
        if record.levelno >= logging.ERROR or MODULE in text or MODULE in record.name:
            self.bad.append(f"{record.levelname} {record.name}: {text[:300]}")


config.parse_config(
    ["-d", args.db, "--addons-path", args.addons_path, "--db_host", "127.0.0.1", "--log-level=warn"]
)
collect = _Collect()
logging.getLogger().addHandler(collect)
registry = Registry(args.db)
with registry.cursor() as cr:
    env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
    module = env["ir.module.module"].search([("name", "=", MODULE), ("state", "=", "installed")])
    if not module:
        sys.exit(f"uninstall: {MODULE} is not installed in {args.db}")
    module.button_immediate_uninstall()

left = []
registry = Registry(args.db)
with registry.cursor() as cr:
    cr.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_name = ANY(%s)", [TABLES]
    )
    left += [f"table {name}" for (name,) in cr.fetchall()]
    cr.execute(
        """SELECT table_name, column_name FROM information_schema.columns
            WHERE table_name = ANY(%s) AND column_name LIKE 'crux\\_%%'""",
        [COLUMNS],
    )
    left += [f"column {table}.{column}" for table, column in cr.fetchall()]
    cr.execute("SELECT model FROM ir_model WHERE model LIKE 'crux.%'")
    left += [f"model {name}" for (name,) in cr.fetchall()]
    cr.execute("SELECT model, name FROM ir_model_fields WHERE name LIKE 'crux\\_%'")
    left += [f"field {model}.{name}" for model, name in cr.fetchall()]
    cr.execute(
        "SELECT model, name FROM ir_model_data WHERE module = %s AND model <> 'ir.module.module'",
        [MODULE],
    )
    left += [f"record {model} {MODULE}.{name}" for model, name in cr.fetchall()]
    cr.execute("SELECT state FROM ir_module_module WHERE name = %s", [MODULE])
    state = cr.fetchone()[0]
    if state != "uninstalled":
        left.append(f"module state {state}")

if collect.bad or left:
    sys.stderr.write("\n".join(collect.bad + left) + "\n")
    sys.exit(f"uninstall: {len(collect.bad)} error/warning line(s), {len(left)} leftover(s)")
print(f"uninstall: {MODULE} uninstalled from {args.db}, nothing left behind")
