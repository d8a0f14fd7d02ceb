"""The Crux client against the local sandbox, over real HTTP."""

import logging

from odoo.addons.crux_tracking.crux import (
    CruxAuthError,
    CruxClient,
    CruxDataError,
    CruxError,
    CruxNoPackageError,
    CruxOrderNotFoundError,
    CruxOrgTypeError,
    CruxTransientError,
)
from odoo.addons.crux_tracking.crux.client import error_message_from_body
from odoo.tests import BaseCase, tagged

from .common import TOKEN, CruxSandboxMixin


@tagged("post_install", "-at_install")
class TestCruxClient(CruxSandboxMixin, BaseCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_sandbox()

    def setUp(self):
        super().setUp()
        self.sandbox.reset()
        self.sandbox.delay = 0.0
        self.order = self.sandbox.add_order(lines=[{"sku_id": "SKU-1", "quantity": 5}])
        self.order_uuid = self.order["order_uuid"]
        self.line_uuid = self.order["line_items"][0]["line_item_uuid"]
        self.client = CruxClient(self.sandbox.url, TOKEN, timeout=1)
        self.addCleanup(self.client.close)

    def stored(self):
        return [p for p in self.sandbox.packages() if p["order_uuid"] == self.order_uuid]

    def payload(self, qty=2, tracking="t01"):
        return {
            "tracking_number": tracking,
            "line_items": [
                {
                    "line_item_uuid": self.line_uuid,
                    "quantity_shipped": qty,
                    "supplier_provided_sku_cost": 13.98,
                }
            ],
        }

    def test_add_tracking_returns_package_uuid(self):
        package_uuid = self.client.add_tracking(self.order_uuid, self.payload())
        stored = self.stored()
        self.assertEqual([p["package_uuid"] for p in stored], [package_uuid])
        request = self.sandbox.requests[-1]
        self.assertEqual(request["headers"]["Authorization"], f"Token {TOKEN}")
        self.assertTrue(request["headers"]["Content-Type"].startswith("application/json"))
        self.assertIn("charset=utf-8", request["headers"]["Content-Type"])
        self.assertEqual(request["json"], self.payload())
        self.assertEqual(request["path"], f"/timp/orders/tracking/{self.order_uuid}/")

    def test_keep_alive_single_session(self):
        for index in range(5):
            self.client.add_tracking(self.order_uuid, self.payload(qty=1, tracking=f"t{index}"))
        self.assertEqual(len(self.stored()), 5)
        # One pooled connection served every call.
        pool = self.client.session.get_adapter(self.sandbox.url).poolmanager
        self.assertEqual(len(pool.pools), 1)

    def test_get_order_shows_recorded_tracking(self):
        self.client.add_tracking(self.order_uuid, self.payload(qty=2))
        detail = self.client.get_order(self.order_uuid)
        tracking = detail["line_items"][0]["tracking"]
        self.assertEqual([(t["tracking_number"], t["quantity"]) for t in tracking], [("t01", 2)])

    def test_errors_are_typed(self):
        cases = [
            (401, CruxAuthError, False),
            (403, CruxAuthError, False),
            (404, CruxOrderNotFoundError, False),
            (409, CruxOrgTypeError, False),
            (400, CruxDataError, False),
            (415, CruxDataError, False),
            (422, CruxDataError, False),
            (429, CruxTransientError, True),
            (500, CruxTransientError, True),
            (502, CruxTransientError, True),
            (503, CruxTransientError, True),
        ]
        for status, error_class, retryable in cases:
            with self.subTest(status=status):
                self.sandbox.inject(status)
                with self.assertRaises(error_class) as caught:
                    self.client.add_tracking(self.order_uuid, self.payload())
                self.assertEqual(caught.exception.status, status)
                self.assertEqual(caught.exception.retryable, retryable)
        self.assertEqual(self.stored(), [])

    def test_real_rejections(self):
        wrong = CruxClient(self.sandbox.url, "wrong-token", timeout=1)
        self.addCleanup(wrong.close)
        with self.assertRaises(CruxAuthError):
            wrong.add_tracking(self.order_uuid, self.payload())
        with self.assertRaises(CruxOrderNotFoundError) as caught:
            self.client.add_tracking("6f1c1a8e-0000-4000-8000-000000000000", self.payload())
        self.assertNotIn("<", caught.exception.message)  # HTML reduced to text
        with self.assertRaises(CruxDataError) as caught:
            self.client.add_tracking(self.order_uuid, {"tracking_number": "x", "line_items": []})
        self.assertIn("line_items", caught.exception.message)
        with self.assertRaises(CruxDataError) as caught:
            self.client.add_tracking(self.order_uuid, self.payload(qty=50))
        self.assertEqual(caught.exception.status, 422)
        self.assertEqual(self.stored(), [])

    def test_retry_after_is_carried(self):
        self.sandbox.inject(429, retry_after="7")
        with self.assertRaises(CruxTransientError) as caught:
            self.client.add_tracking(self.order_uuid, self.payload())
        self.assertEqual(caught.exception.retry_after, 7.0)

    def test_timeout_and_connection_errors_are_transient(self):
        self.sandbox.inject(delay=1.5)
        with self.assertRaises(CruxTransientError) as caught:
            self.client.add_tracking(self.order_uuid, self.payload())
        self.assertTrue(caught.exception.outcome_unknown)
        self.sandbox.inject(close=True)
        with self.assertRaises(CruxTransientError) as caught:
            self.client.add_tracking(self.order_uuid, self.payload(tracking="t02"))
        self.assertTrue(caught.exception.retryable)
        refused = CruxClient("http://127.0.0.1:9", TOKEN, timeout=1)
        with self.assertRaises(CruxTransientError) as caught:
            refused.get_order(self.order_uuid)
        self.assertFalse(caught.exception.outcome_unknown)

    def test_2xx_without_package_uuid(self):
        self.sandbox.inject(malformed=True)
        with self.assertRaises(CruxNoPackageError) as caught:
            self.client.add_tracking(self.order_uuid, self.payload())
        self.assertTrue(caught.exception.outcome_unknown)
        self.sandbox.inject(body="{}")
        with self.assertRaises(CruxNoPackageError):
            self.client.add_tracking(self.order_uuid, self.payload(qty=1, tracking="t2"))

    def test_order_uuid_is_validated_and_quoted(self):
        for bad in ("", "../../admin", "25d6eb53/../x", None, "not-a-uuid"):
            with self.subTest(bad=bad), self.assertRaises(CruxDataError):
                self.client.add_tracking(bad, self.payload())
        self.assertEqual(self.sandbox.requests, [])

    def test_error_bodies_stay_short_and_readable(self):
        self.assertEqual(error_message_from_body(""), "")
        self.assertEqual(
            error_message_from_body('{"line_items": ["This field is required."]}'),
            "line_items: This field is required.",
        )
        self.assertEqual(error_message_from_body('["a", "b"]'), "a; b")
        html = "<html><head><style>x{}</style></head><body><h1>Not Found</h1></body></html>"
        self.assertEqual(error_message_from_body(html), "Not Found")
        self.assertLessEqual(len(error_message_from_body("x" * 5000)), 300)

    def test_token_never_leaks(self):
        self.assertNotIn(TOKEN, repr(self.client))
        self.assertNotIn(TOKEN, str(vars(self.client).get("base_url")))
        exchanges = []
        self.client.on_response = exchanges.append
        with self.assertLogs(level=logging.DEBUG) as logs:
            logging.getLogger("odoo.addons.crux_tracking").debug("marker")
            for status in (401, 500):
                self.sandbox.inject(status)
                try:
                    self.client.add_tracking(self.order_uuid, self.payload())
                except CruxError as exc:
                    self.assertNotIn(TOKEN, str(exc))
                    self.assertNotIn(TOKEN, repr(exc))
                    self.assertNotIn(TOKEN, repr(exc.__cause__))
            self.sandbox.inject(close=True)
            with self.assertRaises(CruxTransientError) as caught:
                self.client.add_tracking(self.order_uuid, self.payload())
            self.assertNotIn(TOKEN, repr(caught.exception.__cause__))
        self.assertNotIn(TOKEN, "\n".join(logs.output))
        self.assertEqual(len(exchanges), 3)
        self.assertNotIn(TOKEN, repr(exchanges))
        with self.assertRaises(CruxAuthError):
            CruxClient(self.sandbox.url, "", timeout=1)
