"""A person presses "Send to Crux" on a done transfer in a real browser."""

from odoo.tests import HttpCase, tagged

from .common import TOKEN, CruxSandboxMixin


@tagged("post_install", "-at_install")
class TestTour(CruxSandboxMixin, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_sandbox()

    def test_send_to_crux_from_the_transfer(self):
        company = self.env.company
        company.write(
            {
                "crux_environment": "custom",
                "crux_api_url": self.sandbox.url,
                "crux_api_token": TOKEN,
                "crux_auto_send": False,
            }
        )
        crux = self.sandbox.add_order(lines=[{"sku_id": "TOUR-1", "quantity": 2}])
        product = self.env["product.product"].create(
            {"name": "Tour Mug", "default_code": "TOUR-1", "is_storable": True}
        )
        warehouse = self.env["stock.warehouse"].search([("company_id", "=", company.id)], limit=1)
        self.env["stock.quant"]._update_available_quantity(product, warehouse.lot_stock_id, 5)
        partner = self.env["res.partner"].create({"name": "Tour Customer"})
        order = self.env["sale.order"].create(
            {
                "partner_id": partner.id,
                "order_line": [(0, 0, {"product_id": product.id, "product_uom_qty": 2})],
            }
        )
        order.action_confirm()
        order.crux_order_uuid = crux["order_uuid"]
        order.order_line.crux_line_item_uuid = crux["line_items"][0]["line_item_uuid"]
        picking = order.picking_ids
        picking.move_ids.quantity = 2
        picking.move_ids.picked = True
        picking.carrier_tracking_ref = "TOUR-TRACK-1"
        picking.button_validate()
        self.assertEqual(picking.state, "done")
        self.assertEqual(picking.crux_state, "not_applicable")
        self.start_tour(
            f"/odoo/action-stock.action_picking_tree_all/{picking.id}",
            "crux_tracking_send_tour",
            login="admin",
        )
        stored = self.sandbox.tracking_posts(crux["order_uuid"])
        self.assertEqual([body["tracking_number"] for body in stored], ["TOUR-TRACK-1"])
        picking.invalidate_recordset()
        self.assertEqual(picking.crux_state, "sent")
        package_uuid = [p for p in self.sandbox.packages() if p["order_uuid"] == crux["order_uuid"]]
        self.assertEqual(picking.crux_package_uuid, package_uuid[0]["package_uuid"])
