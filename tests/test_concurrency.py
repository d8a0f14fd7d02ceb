"""Two runs at once, and a run killed midway, on real committed data and real cursors."""

import os
import signal
import subprocess
import sys
import threading
import time

from odoo import SUPERUSER_ID, api
from odoo.addons.crux_tracking.models.crux_package import LOCK_NAMESPACE
from odoo.exceptions import UserError
from odoo.modules.registry import Registry
from odoo.tests import BaseCase, tagged
from odoo.tests.common import get_db_name
from odoo.tools import config

from .common import TOKEN, CruxSandboxMixin

WORKER = """
import sys
import odoo
from odoo.tools import config
from odoo.modules.registry import Registry
config.parse_config(["-d", sys.argv[1], "--addons-path", sys.argv[2]])
registry = Registry(sys.argv[1])
with registry.cursor() as cr:
    env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
    env["crux.package"]._crux_send_due()
"""


@tagged("post_install", "-at_install")
class TestConcurrency(CruxSandboxMixin, BaseCase):
    """Not in test mode: every cursor is a real connection and commits for real."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_sandbox()
        cls.registry = Registry(get_db_name())

    def setUp(self):
        super().setUp()
        self.sandbox.reset()
        self.sandbox.delay = 0.0
        self.picking_id = None
        self.stats = []
        self.addCleanup(self.cleanup)

    def env_cursor(self):
        cr = self.registry.cursor()
        return cr, api.Environment(cr, SUPERUSER_ID, {})

    def queue_packages(self, count):
        """Commit one transfer with `count` packages waiting to be sent."""
        order = self.sandbox.add_order(lines=[{"sku_id": "BULK", "quantity": 100000}])
        line_uuid = order["line_items"][0]["line_item_uuid"]
        cr, env = self.env_cursor()
        with cr:
            company = env.company
            self.saved_company = {
                f: company[f]
                for f in ("crux_environment", "crux_api_url", "crux_api_token", "crux_concurrency")
            }
            company.write(
                {
                    "crux_environment": "custom",
                    "crux_api_url": self.sandbox.url,
                    "crux_api_token": TOKEN,
                    "crux_concurrency": 4,
                    "crux_timeout": 5,
                }
            )
            warehouse = env["stock.warehouse"].search([("company_id", "=", company.id)], limit=1)
            picking = env["stock.picking"].create(
                {
                    "picking_type_id": warehouse.out_type_id.id,
                    "location_id": warehouse.lot_stock_id.id,
                    "location_dest_id": env.ref("stock.stock_location_customers").id,
                }
            )
            quant_packages = env["stock.quant.package"].create(
                [{"name": f"BULK-{i}"} for i in range(count)]
            )
            env["crux.package"].create(
                [
                    {
                        "name": quant_package.name,
                        "picking_id": picking.id,
                        "quant_package_id": quant_package.id,
                        "order_uuid": order["order_uuid"],
                        "tracking_number": f"BULK-T{i}",
                        "state": "to_send",
                        "payload": {
                            "tracking_number": f"BULK-T{i}",
                            "line_items": [{"line_item_uuid": line_uuid, "quantity_shipped": 1}],
                        },
                        "line_ids": [(0, 0, {"line_item_uuid": line_uuid, "quantity": 1})],
                    }
                    for i, quant_package in enumerate(quant_packages)
                ]
            )
            self.picking_id = picking.id
            self.quant_package_ids = quant_packages.ids
        return order

    def cleanup(self):
        if not self.picking_id:
            return
        cr, env = self.env_cursor()
        with cr:
            picking = env["stock.picking"].browse(self.picking_id)
            if picking.state == "done":
                # A done delivery cannot be deleted; leave it, sent, in the
                # throw-away database.
                env.company.write(self.saved_company)
                return
            picking.unlink()
            env["stock.quant.package"].browse(self.quant_package_ids).unlink()
            env.company.write(self.saved_company)

    def packages_state(self):
        cr, env = self.env_cursor()
        with cr:
            packages = env["crux.package"].search([("picking_id", "=", self.picking_id)])
            return {p.tracking_number: (p.state, p.package_uuid) for p in packages}

    def assert_each_sent_once(self, order, count):
        stored = [p for p in self.sandbox.packages() if p["order_uuid"] == order["order_uuid"]]
        numbers = [p["tracking_number"] for p in stored]
        self.assertEqual(len(numbers), count, "one package on Crux per tracking number")
        self.assertEqual(len(set(numbers)), count, "no tracking number sent twice")
        states = self.packages_state()
        self.assertEqual({s for s, _uuid in states.values()}, {"sent"})
        by_number = {p["tracking_number"]: p["package_uuid"] for p in stored}
        for number, (_state, package_uuid) in states.items():
            if package_uuid:
                self.assertEqual(package_uuid, by_number[number])

    def run_flush(self, errors):
        try:
            cr, env = self.env_cursor()
            with cr:
                self.stats.append(env["crux.package"]._crux_send_due())
        except Exception as exc:  # reported by the test thread
            errors.append(exc)

    def done_linked_transfer(self):
        """Commit a validated delivery of a Crux-linked order (automatic sending off)."""
        crux = self.sandbox.add_order(lines=[{"sku_id": "BTN-1", "quantity": 3}])
        cr, env = self.env_cursor()
        with cr:
            company = env.company
            self.saved_company = {
                f: company[f]
                for f in ("crux_environment", "crux_api_url", "crux_api_token", "crux_auto_send")
            }
            company.write(
                {
                    "crux_environment": "custom",
                    "crux_api_url": self.sandbox.url,
                    "crux_api_token": TOKEN,
                    "crux_auto_send": False,
                }
            )
            product = env["product.product"].create(
                {"name": "Button Mug", "default_code": "BTN-1", "is_storable": True}
            )
            warehouse = env["stock.warehouse"].search([("company_id", "=", company.id)], limit=1)
            env["stock.quant"]._update_available_quantity(product, warehouse.lot_stock_id, 3)
            order = env["sale.order"].create(
                {
                    "partner_id": env["res.partner"].create({"name": "Button Customer"}).id,
                    "crux_order_uuid": crux["order_uuid"],
                    "order_line": [(0, 0, {"product_id": product.id, "product_uom_qty": 3})],
                }
            )
            order.action_confirm()
            order.order_line.crux_line_item_uuid = crux["line_items"][0]["line_item_uuid"]
            picking = order.picking_ids
            picking.move_ids.quantity = 3
            picking.move_ids.picked = True
            picking.carrier_tracking_ref = "BTN-TRACK"
            picking.button_validate()
            self.picking_id = picking.id
            self.quant_package_ids = []
        return crux

    def press_send(self):
        """Press the button the way a request does: its snapshot predates the sending."""
        cr, env = self.env_cursor()
        with cr:
            picking = env["stock.picking"].browse(self.picking_id)
            self.assertEqual(picking.state, "done")  # the request's snapshot starts here
            return picking.action_crux_send()

    def test_button_reports_the_outcome_it_just_committed(self):
        crux = self.done_linked_transfer()
        self.sandbox.inject(422)
        with self.assertRaisesRegex(UserError, "422"):
            self.press_send()
        action = self.press_send()
        stored = [p for p in self.sandbox.packages() if p["order_uuid"] == crux["order_uuid"]]
        self.assertEqual(len(stored), 1)
        self.assertEqual(action["params"]["type"], "success")
        self.assertIn(stored[0]["package_uuid"], action["params"]["message"])

    def test_two_runs_at_once_send_each_package_once(self):
        order = self.queue_packages(200)
        self.sandbox.delay = 0.005
        errors = []
        threads = [threading.Thread(target=self.run_flush, args=(errors,)) for _i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        self.assertEqual(errors, [])
        handled = sum(stats["sent"] + stats["retry"] for stats in self.stats)
        self.assertEqual(handled, 200, f"each package handled by exactly one run: {self.stats}")
        if any(stats["retry"] for stats in self.stats):
            # A transient hiccup under load is retried later, never doubled.
            cr, env = self.env_cursor()
            with cr:
                env["crux.package"].search(
                    [("picking_id", "=", self.picking_id), ("state", "=", "to_send")]
                ).write({"next_attempt": False})
            self.run_flush(errors)
        self.assert_each_sent_once(order, 200)
        self.assertEqual(len(self.sandbox.tracking_posts(order["order_uuid"], status=None)), 200)

    def test_run_killed_midway_loses_nothing(self):
        order = self.queue_packages(40)
        self.sandbox.delay = 0.15
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-c", WORKER, get_db_name(), config["addons_path"]],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.time() + 120
            while (
                len(self.sandbox.tracking_posts(order["order_uuid"], status=None)) < 8
                and time.time() < deadline
                and process.poll() is None
            ):
                time.sleep(0.02)
            self.assertIsNone(process.poll(), "the worker must still be running when killed")
            os.kill(process.pid, signal.SIGKILL)
        finally:
            process.wait(timeout=30)
        states = self.packages_state()
        self.assertIn("sending", {s for s, _uuid in states.values()})
        self.assertLess(len([1 for s, _u in states.values() if s == "sent"]), 40)
        # Let requests already inside the sandbox finish, and PostgreSQL drop
        # the dead worker's session (and with it its advisory locks).
        time.sleep(0.5)
        deadline = time.time() + 30
        while time.time() < deadline:
            cr, _env = self.env_cursor()
            with cr:
                cr.execute(
                    "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s",
                    [LOCK_NAMESPACE],
                )
                if not cr.fetchone()[0]:
                    break
            time.sleep(0.1)
        self.sandbox.delay = 0.0
        self.run_flush(errors := [])
        self.assertEqual(errors, [])
        self.assert_each_sent_once(order, 40)
