"""Shared fixtures: a local Crux sandbox on a free loopback port and Crux-linked orders."""

from urllib.parse import urlparse

from odoo.addons.crux_tracking.sandbox.crux_sandbox import CruxSandbox
from odoo.fields import Command
from odoo.tests import TransactionCase
from odoo.tests.common import _super_send

TOKEN = "tok-9f3c1d2e-secret-crux-token"


class CruxSandboxMixin:
    """Start the sandbox once per class; let only requests to it leave the test."""

    sandbox = None

    @classmethod
    def start_sandbox(cls):
        cls.sandbox = CruxSandbox(token=TOKEN).start()
        cls.addClassCleanup(cls.sandbox.stop)
        parsed = urlparse(cls.sandbox.url)
        cls.sandbox_address = (parsed.hostname, parsed.port)

    @classmethod
    def _request_handler(cls, s, r, /, **kw):
        parsed = urlparse(r.url)
        if cls.sandbox and (parsed.hostname, parsed.port) == cls.sandbox_address:
            return _super_send(s, r, **kw)
        return super()._request_handler(s, r, **kw)


class CruxCase(CruxSandboxMixin, TransactionCase):
    """Odoo data for tracking tests: a company pointed at the sandbox, products, a carrier."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_sandbox()
        cls.env = cls.env(context=dict(cls.env.context, tracking_disable=False))
        cls.company = cls.env.company
        cls.company.write(
            {
                "crux_environment": "custom",
                "crux_api_url": cls.sandbox.url,
                "crux_api_token": TOKEN,
                "crux_auto_send": True,
                "crux_timeout": 2,
                "crux_concurrency": 4,
            }
        )
        cls.company.partner_id.tz = "America/New_York"
        cls.warehouse = cls.env["stock.warehouse"].search(
            [("company_id", "=", cls.company.id)], limit=1
        )
        cls.stock_location = cls.warehouse.lot_stock_id
        cls.customer = cls.env["res.partner"].create({"name": "Crux Retailer Customer"})
        cls.product_a = cls._product("Mug", "CRUX-MUG", weight=0.5)
        cls.product_b = cls._product("Tee", "CRUX-TEE", weight=0.2)
        cls.carrier_product = cls.env["product.product"].create(
            {"name": "UPS Ground shipping", "type": "service"}
        )
        cls.carrier = cls.env["delivery.carrier"].create(
            {
                "name": "UPS",
                "delivery_type": "fixed",
                "fixed_price": 12.5,
                "product_id": cls.carrier_product.id,
                "crux_method": "Ground",
            }
        )

    def setUp(self):
        super().setUp()
        # The engine opens cursors of its own; in test mode they share this
        # test's transaction, so it sees the data and everything rolls back.
        self.registry.enter_test_mode(self.cr)
        self.addCleanup(self.registry.leave_test_mode)
        self.sandbox.reset()
        self.sandbox.delay = 0.0

    @classmethod
    def _product(cls, name, code, weight=0.0, **vals):
        product = cls.env["product.product"].create(
            dict(
                {
                    "name": name,
                    "default_code": code,
                    "is_storable": True,
                    "weight": weight,
                    "list_price": 10.0,
                },
                **vals,
            )
        )
        cls.env["stock.quant"]._update_available_quantity(product, cls.stock_location, 1000)
        return product

    def create_order(self, lines, link=True, carrier=True):
        """A confirmed sale order; lines are (product, quantity[, uom]).

        The matching Crux order is created in the sandbox, and (with ``link``)
        the sale order and its lines carry its uuids.
        """
        crux_order = self.sandbox.add_order(
            lines=[
                {
                    "sku_id": product.default_code,
                    "quantity": int(qty),
                    "retailer_provided_sku_cost": 9.99,
                }
                for product, qty, *_rest in lines
            ]
        )
        order = self.env["sale.order"].create(
            {
                "partner_id": self.customer.id,
                "order_line": [
                    Command.create(
                        dict(
                            {"product_id": product.id, "product_uom_qty": qty, "price_unit": 7.255},
                            **({"product_uom": rest[0].id} if rest else {}),
                        )
                    )
                    for product, qty, *rest in lines
                ],
            }
        )
        if carrier:
            order.set_delivery_line(self.carrier, self.carrier.fixed_price)
        order.action_confirm()
        if link:
            order.crux_order_uuid = crux_order["order_uuid"]
            product_lines = order.order_line.filtered(lambda line: not line.is_delivery)
            for line, item in zip(product_lines, crux_order["line_items"], strict=True):
                line.crux_line_item_uuid = item["line_item_uuid"]
        return order, crux_order

    def ship(self, picking, packs, tracking="1Z999AA10123456784", validate=True):
        """Set what is shipped, per package, then validate.

        :param packs: list of (package name or None, {product: quantity in the
            move's unit, or (quantity, uom)}, package tracking number or None)
        """
        picking.action_assign()
        picking.move_line_ids.unlink()
        for pack_name, quantities, pack_tracking in packs:
            package = self.env["stock.quant.package"]
            if pack_name:
                package = package.create(
                    {"name": pack_name, "crux_tracking_number": pack_tracking or False}
                )
            for product, qty in quantities.items():
                move = picking.move_ids.filtered(lambda m, p=product: m.product_id == p)[:1]
                qty, uom = qty if isinstance(qty, tuple) else (qty, move.product_uom)
                self.env["stock.move.line"].create(
                    {
                        "move_id": move.id,
                        "picking_id": picking.id,
                        "product_id": product.id,
                        "product_uom_id": uom.id,
                        "quantity": qty,
                        "location_id": move.location_id.id,
                        "location_dest_id": move.location_dest_id.id,
                        "result_package_id": package.id,
                    }
                )
        picking.move_ids.picked = True
        # A "fixed" carrier sets no price on the transfer; a connector would.
        picking.carrier_price = self.carrier.fixed_price if picking.carrier_id else 0.0
        if tracking:
            picking.carrier_tracking_ref = tracking
        if validate:
            self.validate(picking)
        return picking

    def validate(self, picking):
        action = picking.button_validate()
        if isinstance(action, dict) and action.get("res_model") == "stock.backorder.confirmation":
            wizard = (
                self.env["stock.backorder.confirmation"]
                .with_context(**action["context"])
                .create({})
            )
            wizard.process()
        self.assertEqual(picking.state, "done")
        return picking

    def flush_crux(self, **kwargs):
        """What the scheduled action does after the validation commits."""
        stats = self.env["crux.package"]._crux_send_due(**kwargs)
        self.env.invalidate_all()
        return stats

    def posts(self, order_uuid=None):
        return self.sandbox.tracking_posts(order_uuid)

    def api_requests(self, method=None):
        return [r for r in self.sandbox.requests if method is None or r["method"] == method]
