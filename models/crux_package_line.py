from odoo import api, fields, models


class CruxPackageLine(models.Model):
    _name = "crux.package.line"
    _description = "Crux Package Line"
    _order = "package_id, id"

    package_id = fields.Many2one("crux.package", required=True, index=True, ondelete="cascade")
    sale_line_id = fields.Many2one("sale.order.line", string="Order Line", ondelete="set null")
    product_id = fields.Many2one(related="sale_line_id.product_id")
    line_item_uuid = fields.Char(string="Crux Line Item")
    quantity = fields.Integer(string="Quantity Shipped")
    sku_cost = fields.Float(string="SKU Cost", digits=(16, 2))

    @api.depends("sale_line_id.product_id", "quantity")
    def _compute_display_name(self):
        for line in self:
            product = line.sale_line_id.product_id.display_name or line.line_item_uuid or ""
            line.display_name = f"{product} x {line.quantity}"
