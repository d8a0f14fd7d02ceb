"""Nothing lost, nothing sent twice: retries, unknown outcomes, audit log, secrets."""

import logging
import time
from datetime import timedelta

from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged
from odoo.tools import file_open

from .common import TOKEN, CruxCase


@tagged("post_install", "-at_install")
class TestReliability(CruxCase):
    def shipped(self, qty=1, tracking="1ZREL"):
        order, crux = self.create_order([(self.product_a, qty)])
        picking = self.ship(order.picking_ids, [(None, {self.product_a: qty}, None)], tracking)
        return picking, crux

    def make_due(self, packages):
        """Let the time of the next attempt come (instead of sleeping through a backoff)."""
        packages.write({"next_attempt": fields.Datetime.now() - timedelta(seconds=1)})
        self.env.flush_all()

    def stored_on_crux(self, crux):
        return [p for p in self.sandbox.packages() if p["order_uuid"] == crux["order_uuid"]]

    def wait_stored(self, crux, count=1, timeout=10):
        deadline = time.time() + timeout
        while len(self.stored_on_crux(crux)) < count and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(len(self.stored_on_crux(crux)), count)

    def test_transient_failures_then_success_give_one_package(self):
        faults = [
            {"status": 429},
            {"status": 500},
            {"status": 502},
            {"status": 503},
            {"status": 504},
            {"close": True},
            {"delay": 3.0},  # longer than the company's 2 s timeout
        ]
        for fault in faults:
            with self.subTest(fault=fault):
                self.sandbox.reset()
                picking, crux = self.shipped(tracking=f"T-{sorted(fault.items())}")
                package = picking.crux_package_ids
                self.sandbox.inject(**fault)
                stats = self.flush_crux()
                self.assertEqual(stats["retry"], 1)
                self.assertEqual(package.state, "to_send")
                self.assertEqual(package.error_kind, "transient")
                self.assertEqual(package.attempt_count, 1)
                self.assertGreater(package.next_attempt, fields.Datetime.now())
                self.assertTrue(package.last_error)
                # Not due yet: the scheduled action leaves it alone.
                self.flush_crux()
                self.assertEqual(package.attempt_count, 1)
                if fault.get("delay"):
                    self.wait_stored(crux)  # Crux stored it after the client gave up
                self.make_due(package)
                self.flush_crux()
                self.assertEqual(package.state, "sent")
                self.assertEqual(len(self.stored_on_crux(crux)), 1)
                self.assertEqual(picking.crux_state, "sent")

    def test_retry_after_is_honoured(self):
        picking, _crux = self.shipped()
        self.sandbox.inject(429, retry_after="600")
        before = fields.Datetime.now()
        self.flush_crux()
        package = picking.crux_package_ids
        self.assertGreaterEqual(package.next_attempt, before + timedelta(seconds=599))
        # The exponential backoff alone would be about a minute.
        backoff = self.env["crux.package"]._crux_backoff(1)
        self.assertLess(backoff, 100)
        self.assertGreaterEqual(backoff, 48)
        self.assertGreater(self.env["crux.package"]._crux_backoff(3), 190)

    def test_gives_up_after_the_retry_limit(self):
        self.company.crux_retry_limit = 2
        picking, crux = self.shipped()
        package = picking.crux_package_ids
        self.sandbox.inject(503, count=2)
        self.flush_crux()
        self.make_due(package)
        self.flush_crux()
        self.assertEqual(package.state, "failed")
        self.assertEqual(package.attempt_count, 2)
        self.assertIn("Gave up after 2 attempts", package.last_error)
        activities = picking.activity_ids.filtered(
            lambda a: (
                a.activity_type_id == self.env.ref("crux_tracking.mail_activity_type_crux_failure")
            )
        )
        self.assertEqual(len(activities), 1)
        self.assertEqual(self.stored_on_crux(crux), [])
        # A person presses Retry once Crux is back.
        picking.action_crux_retry()
        self.assertEqual(package.state, "sent")
        self.assertEqual(len(self.stored_on_crux(crux)), 1)

    def test_stored_then_connection_dropped_is_not_sent_twice(self):
        picking, crux = self.shipped(qty=2, tracking="DROP-1")
        package = picking.crux_package_ids
        self.sandbox.inject(store_then_close=True)
        self.flush_crux()
        self.assertEqual(package.state, "to_send")
        self.assertTrue(package.needs_check)
        self.assertEqual(len(self.stored_on_crux(crux)), 1)
        self.make_due(package)
        self.flush_crux()
        self.assertEqual(package.state, "sent")
        self.assertTrue(package.recovered)
        self.assertFalse(package.package_uuid)
        self.assertEqual(len(self.stored_on_crux(crux)), 1)
        self.assertEqual([r["method"] for r in self.api_requests()], ["POST", "GET"])
        self.assertTrue(
            any("could not be recovered" in (m.body or "") for m in picking.message_ids)
        )

    def test_answer_without_package_uuid_is_checked(self):
        picking, crux = self.shipped(tracking="MAL-1")
        package = picking.crux_package_ids
        self.sandbox.inject(malformed=True)
        self.flush_crux()
        self.assertTrue(package.needs_check)
        self.make_due(package)
        self.flush_crux()
        self.assertEqual(package.state, "sent")
        self.assertTrue(package.recovered)
        self.assertEqual(len(self.stored_on_crux(crux)), 1)

    def test_unknown_outcome_not_on_crux_is_posted_again(self):
        picking, crux = self.shipped(tracking="LOST-1")
        package = picking.crux_package_ids
        self.sandbox.inject(close=True)
        self.flush_crux()
        self.assertTrue(package.needs_check)
        self.make_due(package)
        self.flush_crux()
        self.assertEqual([r["method"] for r in self.api_requests()], ["POST", "GET", "POST"])
        self.assertEqual(package.state, "sent")
        self.assertFalse(package.recovered)
        self.assertEqual(len(self.stored_on_crux(crux)), 1)

    def test_refused_token_causes_no_retry_storm(self):
        pickings = self.env["stock.picking"]
        for index in range(5):
            picking, _crux = self.shipped(tracking=f"AUTH-{index}")
            pickings |= picking
        self.company.crux_api_token = "wrong-token"
        self.sandbox.reset()
        with self.assertLogs("odoo.addons.crux_tracking", level="WARNING") as logs:
            self.flush_crux()
            self.flush_crux()
            self.flush_crux()
        self.assertEqual(len(self.api_requests()), 1)
        self.assertEqual(len(logs.output), 1)
        self.assertIn("paused", logs.output[0])
        self.assertTrue(self.company.crux_auth_error)
        packages = pickings.crux_package_ids
        self.assertEqual(packages.mapped("state").count("failed"), 1)
        self.assertEqual(packages.mapped("state").count("to_send"), 4)
        activities = pickings.activity_ids.filtered(
            lambda a: (
                a.activity_type_id == self.env.ref("crux_tracking.mail_activity_type_crux_failure")
            )
        )
        self.assertEqual(len(activities), 1)
        # Fixing the token resumes everything, each package once.
        self.company.crux_api_token = TOKEN
        self.assertFalse(self.company.crux_auth_error)
        self.flush_crux()
        self.assertEqual(set(packages.mapped("state")), {"sent"})
        posted = [r["json"]["tracking_number"] for r in self.api_requests("POST")]
        self.assertEqual(sorted(posted[1:]), [f"AUTH-{i}" for i in range(5)])

    def test_audit_log_redacts_and_is_reachable(self):
        picking, _crux = self.shipped()
        self.sandbox.inject(500)
        self.flush_crux()
        self.make_due(picking.crux_package_ids)
        self.flush_crux()
        logs = self.env["crux.request.log"].search([("picking_id", "=", picking.id)])
        # The 500, then the check of the order (GET 200), then the post (201).
        self.assertEqual(sorted(logs.mapped("status")), [200, 201, 500])
        self.assertEqual(len(logs), len(self.api_requests()))
        for log in logs:
            self.assertTrue(log.url.startswith(self.sandbox.url))
            self.assertGreaterEqual(log.duration, 0)
            for value in (log.url, log.request_body, log.response_body, log.error):
                self.assertNotIn(TOKEN, value or "")
        self.assertIn('"tracking_number"', logs[0].request_body)
        self.assertEqual(picking.crux_request_count, len(logs))
        action = picking.action_crux_view_requests()
        self.assertEqual(self.env["crux.request.log"].search(action["domain"]), logs)
        # Purged after the retention.
        self.company.crux_log_retention_days = 5
        self.env.cr.execute(
            "UPDATE crux_request_log SET create_date = %s WHERE id = %s",
            [fields.Datetime.now() - timedelta(days=6), logs[-1].id],
        )
        self.env["crux.request.log"]._cron_crux_purge()
        self.assertEqual(len(logs.exists()), len(logs) - 1)

    def test_token_stays_secret(self):
        with self.assertLogs(level=logging.DEBUG) as logs:
            logging.getLogger("odoo.addons.crux_tracking").debug("capture starts")
            picking, _crux = self.shipped()
            self.sandbox.inject(500)
            self.flush_crux()
            self.company.crux_api_token = "another-wrong-token"
            self.make_due(picking.crux_package_ids)
            self.flush_crux()
            self.company.crux_api_token = TOKEN
            self.flush_crux()
        self.assertEqual(picking.crux_state, "sent")
        self.assertNotIn(TOKEN, "\n".join(logs.output))
        messages = self.env["mail.message"].search([("body", "ilike", TOKEN)])
        self.assertFalse(messages)
        stored = self.env["crux.request.log"].search(
            [
                "|",
                "|",
                ("request_body", "ilike", TOKEN),
                ("response_body", "ilike", TOKEN),
                ("url", "ilike", TOKEN),
            ]
        )
        self.assertFalse(stored)
        self.assertTrue(self.env["crux.request.log"].search_count([]))
        self.assertFalse(self.env["mail.activity"].search([("note", "ilike", TOKEN)]))

    def test_stock_user_cannot_read_the_token(self):
        user = new_test_user(self.env, "crux_stock_user", groups="stock.group_stock_user")
        with self.assertRaises(AccessError):
            self.company.with_user(user).read(["crux_api_token"])
        with self.assertRaises(AccessError):
            _value = self.company.with_user(user).crux_api_token
        admin = new_test_user(self.env, "crux_admin", groups="base.group_system")
        self.assertEqual(self.company.with_user(admin).crux_api_token, TOKEN)
        # The engine still works for a stock user, who cannot read the token.
        picking, _crux = self.shipped()
        self.company.crux_auto_send = False
        picking.with_user(user).action_crux_send()
        self.assertEqual(picking.crux_state, "sent")

    def test_neutralize(self):
        with file_open("crux_tracking/data/neutralize.sql") as handle:
            self.env.cr.execute(handle.read())
        self.env.invalidate_all()
        self.assertFalse(self.company.crux_api_token)
        self.assertFalse(self.env.ref("crux_tracking.ir_cron_crux_send").active)
        self.assertFalse(self.env.ref("crux_tracking.ir_cron_crux_purge_logs").active)

    def test_orphan_in_flight_is_recovered(self):
        picking, crux = self.shipped(tracking="ORPHAN-1")
        package = picking.crux_package_ids
        # A run claimed it and died before posting: nobody holds its lock.
        package.write({"state": "sending", "sending_since": fields.Datetime.now()})
        self.env.flush_all()
        self.flush_crux()
        self.assertEqual(package.state, "sent")
        self.assertEqual([r["method"] for r in self.api_requests()], ["GET", "POST"])
        self.assertEqual(len(self.stored_on_crux(crux)), 1)
