"""Validating a delivery reports its packages to Crux (issue: tracking flow)."""

from odoo.exceptions import UserError, ValidationError
from odoo.tests import tagged

from .common import CruxCase


@tagged("post_install", "-at_install")
class TestTrackingFlow(CruxCase):
    def test_one_package(self):
        order, crux = self.create_order([(self.product_a, 3), (self.product_b, 2)])
        picking = order.picking_ids
        self.ship(picking, [(None, {self.product_a: 3, self.product_b: 2}, None)])
        # Validation only queues: nothing went to Crux inside the validation.
        self.assertEqual(self.posts(), [])
        self.assertEqual(picking.crux_state, "to_send")
        self.assertEqual(picking.crux_package_ids.state, "to_send")
        self.flush_crux()
        posts = self.posts(crux["order_uuid"])
        self.assertEqual(len(posts), 1)
        body = posts[0]
        line_a, line_b = crux["line_items"]
        self.assertEqual(body["tracking_number"], "1Z999AA10123456784")
        self.assertEqual(body["supplier_provided_carrier"], "UPS")
        self.assertEqual(body["supplier_provided_method"], "Ground")
        self.assertEqual(body["package_ship_cost"], 12.5)
        # 3 x 0.5 kg + 2 x 0.2 kg = 1.9 kg = 4.19 lb
        self.assertEqual(body["package_weight"], 4.19)
        self.assertRegex(body["package_ship_date"], r"^\d{4}-\d{2}-\d{2}$")
        self.assertEqual(
            body["line_items"],
            [
                {
                    "line_item_uuid": line_a["line_item_uuid"],
                    "quantity_shipped": 3,
                    "supplier_provided_sku_cost": 7.26,
                },
                {
                    "line_item_uuid": line_b["line_item_uuid"],
                    "quantity_shipped": 2,
                    "supplier_provided_sku_cost": 7.26,
                },
            ],
        )
        attributes = {a["attribute_name"]: a["attribute_value"] for a in body["package_attributes"]}
        self.assertEqual(attributes["odoo_transfer"], picking.name)
        self.assertIn("odoo_package", attributes)
        stored = self.sandbox.packages()[-1]["package_uuid"]
        self.assertEqual(picking.crux_state, "sent")
        self.assertEqual(picking.crux_package_uuid, stored)
        self.assertEqual(picking.crux_package_ids.package_uuid, stored)
        self.assertEqual(picking.crux_package_ids.line_ids.mapped("quantity"), [3, 2])
        self.assertTrue(any(stored in (m.body or "") for m in picking.message_ids))

    def test_ship_date_in_company_timezone(self):
        order, _crux = self.create_order([(self.product_a, 1)])
        picking = self.ship(order.picking_ids, [(None, {self.product_a: 1}, None)])
        # 02:30 UTC is still the previous day in New York.
        picking.date_done = "2026-03-10 02:30:00"
        self.assertEqual(picking._crux_ship_date(), "2026-03-09")

    def test_several_packages_with_own_tracking(self):
        order, crux = self.create_order([(self.product_a, 4), (self.product_b, 2)])
        picking = self.ship(
            order.picking_ids,
            [
                ("BOX-1", {self.product_a: 3}, "TRK-1"),
                ("BOX-2", {self.product_a: 1, self.product_b: 2}, "TRK-2"),
            ],
            validate=False,
        )
        picking.move_line_ids.result_package_id.filtered(
            lambda p: p.name == "BOX-1"
        ).shipping_weight = 2
        self.validate(picking)
        self.flush_crux()
        posts = sorted(self.posts(crux["order_uuid"]), key=lambda b: b["tracking_number"])
        self.assertEqual([b["tracking_number"] for b in posts], ["TRK-1", "TRK-2"])
        line_a, line_b = (item["line_item_uuid"] for item in crux["line_items"])
        self.assertEqual(
            [(i["line_item_uuid"], i["quantity_shipped"]) for i in posts[0]["line_items"]],
            [(line_a, 3)],
        )
        self.assertEqual(
            [(i["line_item_uuid"], i["quantity_shipped"]) for i in posts[1]["line_items"]],
            [(line_a, 1), (line_b, 2)],
        )
        self.assertEqual(posts[0]["package_weight"], 4.41)  # its shipping weight, 2 kg
        self.assertEqual(posts[1]["package_weight"], 1.98)  # 0.9 kg of products
        # The whole shipping cost rides on the first package only.
        self.assertEqual(sum(b.get("package_ship_cost", 0) for b in posts), 12.5)
        names = {
            b["tracking_number"]: {
                a["attribute_name"]: a["attribute_value"] for a in b["package_attributes"]
            }
            for b in posts
        }
        self.assertEqual(names["TRK-2"]["odoo_package"], "BOX-2")
        self.assertEqual(len(picking.crux_package_ids), 2)
        self.assertEqual(
            set(picking.crux_package_uuid.split(", ")),
            {
                p["package_uuid"]
                for p in self.sandbox.packages()
                if p["order_uuid"] == crux["order_uuid"]
            },
        )
        # The chatter names each package_uuid, in internal log notes.
        notes = picking.message_ids.filtered(lambda m: "sent to Crux" in (m.body or ""))
        self.assertTrue(notes)
        self.assertTrue(all(m.is_internal for m in notes))
        chatter = " ".join(notes.mapped("body"))
        for package in picking.crux_package_ids:
            self.assertIn(package.package_uuid, chatter)
            self.assertIn(package.tracking_number, chatter)

    def test_partial_delivery_then_backorder(self):
        order, crux = self.create_order([(self.product_a, 5)])
        first = self.ship(order.picking_ids, [(None, {self.product_a: 2}, None)], tracking="T-A")
        self.flush_crux()
        backorder = order.picking_ids - first
        self.assertEqual(len(backorder), 1)
        self.assertEqual(backorder.crux_state, "not_applicable")
        self.ship(backorder, [(None, {self.product_a: 3}, None)], tracking="T-B")
        self.flush_crux()
        posts = self.posts(crux["order_uuid"])
        self.assertEqual(
            [(b["tracking_number"], b["line_items"][0]["quantity_shipped"]) for b in posts],
            [("T-A", 2), ("T-B", 3)],
        )
        self.assertEqual((first + backorder).mapped("crux_state"), ["sent", "sent"])

    def test_sale_line_in_dozens(self):
        dozen = self.env.ref("uom.product_uom_dozen")
        units = self.env.ref("uom.product_uom_unit")
        order, crux = self.create_order([(self.product_a, 2, dozen)])
        self.ship(order.picking_ids, [(None, {self.product_a: (24, units)}, None)])
        self.flush_crux()
        body = self.posts(crux["order_uuid"])[0]
        self.assertEqual(body["line_items"][0]["quantity_shipped"], 2)
        self.assertEqual(body["line_items"][0]["supplier_provided_sku_cost"], 7.26)

    def test_fractional_quantity_in_sale_unit(self):
        dozen = self.env.ref("uom.product_uom_dozen")
        units = self.env.ref("uom.product_uom_unit")
        order, _crux = self.create_order([(self.product_a, 2, dozen)])
        picking = self.ship(order.picking_ids, [(None, {self.product_a: (18, units)}, None)])
        package = picking.crux_package_ids
        self.assertEqual(package.state, "failed")
        self.assertIn(picking.name, package.last_error)
        self.assertIn("not a whole number", package.last_error)
        self.assertEqual(picking.crux_state, "failed")
        self.assertTrue(picking.activity_ids)
        self.flush_crux()
        self.assertEqual(self.api_requests(), [])

    def test_kit(self):
        self.assertIn("mrp.bom", self.env, "the test database installs sale_mrp for kits")
        kit = self._product("Gift Set", "CRUX-KIT")
        self.env["mrp.bom"].create(
            {
                "product_tmpl_id": kit.product_tmpl_id.id,
                "type": "phantom",
                "bom_line_ids": [
                    (0, 0, {"product_id": self.product_a.id, "product_qty": 2}),
                    (0, 0, {"product_id": self.product_b.id, "product_qty": 1}),
                ],
            }
        )
        order, crux = self.create_order([(kit, 3)])
        picking = order.picking_ids
        self.assertEqual(picking.move_ids.product_id, self.product_a | self.product_b)
        self.ship(picking, [(None, {self.product_a: 6, self.product_b: 3}, None)])
        self.flush_crux()
        body = self.posts(crux["order_uuid"])[0]
        self.assertEqual(
            body["line_items"],
            [
                {
                    "line_item_uuid": crux["line_items"][0]["line_item_uuid"],
                    "quantity_shipped": 3,
                    "supplier_provided_sku_cost": 7.26,
                }
            ],
        )

    def test_weight_database_in_kg_and_in_lb(self):
        order, crux = self.create_order([(self.product_a, 4)])
        picking = self.ship(
            order.picking_ids, [("BOX-KG", {self.product_a: 4}, None)], validate=False
        )
        package = picking.move_line_ids.result_package_id
        self.assertEqual(picking._crux_weight_lb(10.0), 22.05)
        self.env["ir.config_parameter"].sudo().set_param("product.weight_in_lbs", "1")
        self.assertEqual(picking._crux_weight_lb(10.0), 10.0)
        self.env["ir.config_parameter"].sudo().set_param("product.weight_in_lbs", "0")
        package.shipping_weight = 10.0
        self.validate(picking)
        self.flush_crux()
        self.assertEqual(self.posts(crux["order_uuid"])[0]["package_weight"], 22.05)

    def test_receipts_and_returns_send_nothing(self):
        order, _crux = self.create_order([(self.product_a, 2)])
        picking = self.ship(order.picking_ids, [(None, {self.product_a: 2}, None)])
        self.flush_crux()
        self.sandbox.reset()
        wizard = (
            self.env["stock.return.picking"]
            .with_context(active_id=picking.id, active_model="stock.picking")
            .create({})
        )
        wizard.product_return_moves.quantity = 2
        result = wizard.action_create_returns()
        returned = self.env["stock.picking"].browse(result["res_id"])
        returned.move_ids.quantity = 2
        returned.move_ids.picked = True
        returned.button_validate()
        self.assertEqual(returned.state, "done")
        receipt_type = self.warehouse.in_type_id
        receipt = self.env["stock.picking"].create(
            {
                "picking_type_id": receipt_type.id,
                "location_id": self.env.ref("stock.stock_location_suppliers").id,
                "location_dest_id": self.stock_location.id,
                "move_ids": [
                    (
                        0,
                        0,
                        {
                            "name": "in",
                            "product_id": self.product_a.id,
                            "product_uom_qty": 1,
                            "quantity": 1,
                            "picked": True,
                            "location_id": self.env.ref("stock.stock_location_suppliers").id,
                            "location_dest_id": self.stock_location.id,
                        },
                    )
                ],
            }
        )
        receipt.button_validate()
        self.flush_crux()
        self.assertEqual((returned | receipt).mapped("crux_state"), ["not_applicable"] * 2)
        self.assertFalse((returned | receipt).crux_package_ids)
        self.assertEqual(self.api_requests(), [])

    def test_unlinked_order_is_not_applicable(self):
        order, _crux = self.create_order([(self.product_a, 1)], link=False)
        picking = self.ship(order.picking_ids, [(None, {self.product_a: 1}, None)])
        self.assertEqual(picking.crux_state, "not_applicable")
        with self.assertRaisesRegex(UserError, picking.name):
            picking.action_crux_send()
        self.assertEqual(self.api_requests(), [])

    def test_lines_linked_but_order_not_linked(self):
        order, _crux = self.create_order([(self.product_a, 1)])
        order.crux_order_uuid = False
        picking = self.ship(order.picking_ids, [(None, {self.product_a: 1}, None)])
        self.assertEqual(picking.crux_state, "failed")
        self.assertIn("has no Crux Order", picking.crux_package_ids.last_error)
        self.assertIn(order.name, picking.crux_package_ids.last_error)

    def test_line_without_line_item_uuid(self):
        order, crux = self.create_order([(self.product_a, 1), (self.product_b, 1)])
        line_b = order.order_line.filtered(lambda line: line.product_id == self.product_b)
        line_b.crux_line_item_uuid = False
        picking = self.ship(
            order.picking_ids, [(None, {self.product_a: 1, self.product_b: 1}, None)]
        )
        package = picking.crux_package_ids
        self.assertEqual(package.state, "failed")
        self.assertIn("Tee", package.last_error)
        self.assertIn("no Crux Line Item", package.last_error)
        with self.assertRaisesRegex(UserError, "no Crux Line Item"):
            picking.action_crux_send()
        self.assertEqual(self.api_requests(), [])
        # A person fixes the line and presses Retry: it goes, once.
        line_b.crux_line_item_uuid = crux["line_items"][1]["line_item_uuid"]
        picking.action_crux_retry()
        self.assertEqual(picking.crux_state, "sent")
        self.assertEqual(len(self.posts(crux["order_uuid"])), 1)
        # Pressing again sends nothing new.
        picking.action_crux_send()
        self.assertEqual(len(self.posts(crux["order_uuid"])), 1)
        self.assertFalse(picking.crux_can_send)
        self.assertFalse(
            picking.activity_ids.filtered(
                lambda a: (
                    a.activity_type_id
                    == self.env.ref("crux_tracking.mail_activity_type_crux_failure")
                )
            )
        )

    def test_missing_configuration(self):
        order, crux = self.create_order([(self.product_a, 1)])
        picking = self.ship(order.picking_ids, [(None, {self.product_a: 1}, None)])
        self.company.crux_api_token = False
        self.flush_crux()
        package = picking.crux_package_ids
        self.assertEqual(package.state, "failed")
        self.assertIn("no Crux API token", package.last_error)
        self.assertEqual(self.api_requests(), [])
        self.company.crux_api_url = False
        with self.assertRaisesRegex(UserError, "no Crux API URL"):
            picking.action_crux_send()
        # Configuring the company puts the package back in the queue.
        self.company.write(
            {"crux_api_url": self.sandbox.url, "crux_api_token": "tok-9f3c1d2e-secret-crux-token"}
        )
        self.assertEqual(package.state, "to_send")
        self.flush_crux()
        self.assertEqual(picking.crux_state, "sent")
        self.assertEqual(len(self.posts(crux["order_uuid"])), 1)

    def test_crux_rejects_the_data(self):
        order, crux = self.create_order([(self.product_a, 2)])
        # Crux knows only 1 unit for this line: shipping 2 is refused (422).
        self.sandbox.get_order(crux["order_uuid"])
        crux_small = self.sandbox.add_order(lines=[{"sku_id": "CRUX-MUG", "quantity": 1}])
        order.crux_order_uuid = crux_small["order_uuid"]
        order.order_line.filtered("crux_line_item_uuid").crux_line_item_uuid = crux_small[
            "line_items"
        ][0]["line_item_uuid"]
        picking = self.ship(order.picking_ids, [(None, {self.product_a: 2}, None)])
        self.flush_crux()
        package = picking.crux_package_ids
        self.assertEqual(package.state, "failed")
        self.assertEqual(package.error_kind, "crux")
        self.assertIn("422", package.last_error)
        self.assertIn("cannot ship", package.last_error)
        self.assertEqual(package.attempt_count, 1)
        self.assertTrue(picking.activity_ids)
        # Permanent: the scheduled action does not try again by itself.
        self.flush_crux()
        self.assertEqual(len(self.api_requests("POST")), 1)
        with self.assertRaisesRegex(UserError, "422"):
            picking.action_crux_retry()
        self.assertEqual(len(self.api_requests("POST")), 2)

    def test_tracking_number_known_after_validation(self):
        order, crux = self.create_order([(self.product_a, 1)])
        picking = self.ship(order.picking_ids, [(None, {self.product_a: 1}, None)], tracking=False)
        self.assertEqual(picking.crux_package_ids.state, "waiting")
        self.assertEqual(picking.crux_state, "to_send")
        self.flush_crux()
        self.assertEqual(self.api_requests(), [])
        with self.assertRaisesRegex(UserError, "no tracking number"):
            picking.action_crux_send()
        self.assertEqual(self.api_requests(), [])
        picking.carrier_tracking_ref = "LATE-123"
        self.assertEqual(picking.crux_package_ids.state, "to_send")
        self.flush_crux()
        posts = self.posts(crux["order_uuid"])
        self.assertEqual([b["tracking_number"] for b in posts], ["LATE-123"])
        self.assertEqual(picking.crux_state, "sent")

    def test_auto_send_off_then_button(self):
        self.company.crux_auto_send = False
        order, crux = self.create_order([(self.product_a, 1)])
        picking = self.ship(order.picking_ids, [(None, {self.product_a: 1}, None)])
        self.assertEqual(picking.crux_state, "not_applicable")
        self.assertTrue(picking.crux_can_send)
        action = picking.action_crux_send()
        self.assertEqual(action["tag"], "display_notification")
        self.assertEqual(picking.crux_state, "sent")
        self.assertIn(picking.crux_package_uuid, action["params"]["message"])
        self.assertEqual(len(self.posts(crux["order_uuid"])), 1)

    def test_fetch_line_items(self):
        crux = self.sandbox.add_order(
            lines=[{"sku_id": "CRUX-TEE", "quantity": 2}, {"sku_id": "CRUX-MUG", "quantity": 1}]
        )
        other = self._product("Other", "NOT-ON-CRUX")
        order = self.env["sale.order"].create(
            {
                "partner_id": self.customer.id,
                "crux_order_uuid": crux["order_uuid"],
                "order_line": [
                    (0, 0, {"product_id": self.product_a.id, "product_uom_qty": 1}),
                    (0, 0, {"product_id": self.product_b.id, "product_uom_qty": 2}),
                    (0, 0, {"product_id": other.id, "product_uom_qty": 1}),
                ],
            }
        )
        action = order.action_crux_fetch_line_items()
        by_sku = {i["sku_id"]: i["line_item_uuid"] for i in crux["line_items"]}
        line_a, line_b, line_other = order.order_line
        self.assertEqual(line_a.crux_line_item_uuid, by_sku["CRUX-MUG"])
        self.assertEqual(line_b.crux_line_item_uuid, by_sku["CRUX-TEE"])
        self.assertFalse(line_other.crux_line_item_uuid)
        self.assertEqual(action["params"]["type"], "warning")
        self.assertIn("Other", action["params"]["message"])
        log = self.env["crux.request.log"].search([], limit=1)
        self.assertEqual(log.method, "GET")
        self.assertEqual(log.status, 200)

    def test_uuid_format_checked(self):
        order, _crux = self.create_order([(self.product_a, 1)])
        with self.assertRaisesRegex(ValidationError, order.name):
            order.crux_order_uuid = "not a uuid"
        with self.assertRaisesRegex(ValidationError, "Crux Line Item"):
            order.order_line[0].crux_line_item_uuid = "1234"

    def test_carrier_mapping_defaults(self):
        carrier = self.env["delivery.carrier"].create(
            {"name": "FedEx Home", "product_id": self.carrier_product.id}
        )
        self.assertEqual(carrier.crux_carrier_name, "FedEx Home")
        self.assertFalse(carrier.crux_method)

    def test_default_attributes(self):
        self.company.crux_default_attributes = "warehouse = Main\nchannel=crux"
        order, crux = self.create_order([(self.product_a, 1)])
        self.ship(order.picking_ids, [(None, {self.product_a: 1}, None)])
        self.flush_crux()
        attributes = self.posts(crux["order_uuid"])[0]["package_attributes"]
        self.assertIn({"attribute_name": "warehouse", "attribute_value": "Main"}, attributes)
        self.assertIn({"attribute_name": "channel", "attribute_value": "crux"}, attributes)
        with self.assertRaisesRegex(ValidationError, "Default Package Attributes"):
            self.company.crux_default_attributes = "no equal sign"

    def test_settings_test_connection(self):
        settings = self.env["res.config.settings"].create({})
        self.assertEqual(settings.crux_api_url, self.sandbox.url)
        action = settings.action_crux_test_connection()
        self.assertEqual(action["params"]["type"], "success")
        self.assertEqual([r["status"] for r in self.api_requests()], [404])
        self.company.crux_api_token = "wrong-token"
        with self.assertRaisesRegex(UserError, "refused the token"):
            settings.action_crux_test_connection()
        self.company.crux_api_url = "http://127.0.0.1:9"
        with self.assertRaisesRegex(UserError, "Could not talk to Crux"):
            settings.action_crux_test_connection()
        self.company.crux_api_token = False
        with self.assertRaisesRegex(UserError, "no Crux API token"):
            settings.action_crux_test_connection()
