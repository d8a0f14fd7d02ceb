from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..crux.client import UUID_RE


class SaleOrderLine(models.Model):
    _inherit = "sale.order.line"

    crux_line_item_uuid = fields.Char(
        string="Crux Line Item",
        index="btree_not_null",
        copy=False,
        help="The uuid of the Crux line item this line ships.",
    )

    @api.constrains("crux_line_item_uuid")
    def _check_crux_line_item_uuid(self):
        for line in self:
            if line.crux_line_item_uuid and not UUID_RE.match(line.crux_line_item_uuid):
                raise ValidationError(
                    self.env._(
                        "Order %(order)s, line %(line)s: Crux Line Item '%(value)s' is not a uuid.",
                        order=line.order_id.name,
                        line=line.product_id.display_name or line.name,
                        value=line.crux_line_item_uuid,
                    )
                )
