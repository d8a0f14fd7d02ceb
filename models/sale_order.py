import logging

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError

from ..crux import CruxError
from ..crux.client import UUID_RE

_logger = logging.getLogger(__name__)


class SaleOrder(models.Model):
    _inherit = "sale.order"

    crux_order_uuid = fields.Char(
        string="Crux Order",
        index="btree_not_null",
        copy=False,
        tracking=True,
        help="The uuid of the CRUXconnect order this sale order fulfils.",
    )

    @api.constrains("crux_order_uuid")
    def _check_crux_order_uuid(self):
        for order in self:
            if order.crux_order_uuid and not UUID_RE.match(order.crux_order_uuid):
                raise ValidationError(
                    self.env._(
                        "Order %(order)s: Crux Order '%(value)s' is not a uuid.",
                        order=order.name,
                        value=order.crux_order_uuid,
                    )
                )

    def action_crux_fetch_line_items(self):
        """Fill the lines' Crux line item uuids from Crux's order detail.

        Lines are matched on Crux's ``sku_id`` = the product's internal reference.
        """
        self.ensure_one()
        if not self.crux_order_uuid:
            raise UserError(
                self.env._("Order %(order)s: set its Crux Order first.", order=self.name)
            )
        company = self.company_id
        error = company._crux_config_error()
        if error:
            raise UserError(error)
        exchanges = []
        try:
            with company._crux_client(on_response=exchanges.append) as client:
                detail = client.get_order(self.crux_order_uuid)
        except CruxError as exc:
            raise UserError(
                self.env._(
                    "Order %(order)s: could not read Crux order %(uuid)s: %(error)s",
                    order=self.name,
                    uuid=self.crux_order_uuid,
                    error=exc.message,
                )
            ) from None
        finally:
            self.env["crux.request.log"]._crux_store(exchanges, company)
        matched, unmatched = self._crux_match_line_items(detail.get("line_items") or [])
        for line, line_item_uuid in matched:
            line.crux_line_item_uuid = line_item_uuid
        if unmatched:
            message = self.env._(
                "Order %(order)s: %(count)s line(s) could not be matched to a Crux line item "
                "(match on the product's Internal Reference = Crux sku_id): %(lines)s",
                order=self.name,
                count=len(unmatched),
                lines=", ".join(unmatched),
            )
            kind = "warning"
        else:
            message = self.env._(
                "Order %(order)s: %(count)s line(s) linked to Crux.",
                order=self.name,
                count=len(matched),
            )
            kind = "success"
        self.message_post(body=message)
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": kind,
                "message": message,
                "sticky": bool(unmatched),
                "next": {"type": "ir.actions.client", "tag": "soft_reload"},
            },
        }

    def _crux_match_line_items(self, crux_lines):
        """Pair this order's product lines with Crux line items on SKU.

        :return: ([(sale line, line_item_uuid)], [names of unmatched lines])
        """
        by_sku = {}
        for item in crux_lines:
            if isinstance(item, dict) and item.get("sku_id") and item.get("line_item_uuid"):
                by_sku.setdefault(str(item["sku_id"]).strip(), []).append(item["line_item_uuid"])
        matched, unmatched = [], []
        lines = self.order_line.filtered(lambda line: not line.display_type and line.product_id)
        lines = lines.filtered(lambda line: line.product_id.type != "service")
        for line in lines:
            candidates = by_sku.get((line.product_id.default_code or "").strip())
            if candidates:
                matched.append((line, candidates.pop(0)))
            else:
                unmatched.append(line.product_id.display_name)
        return matched, unmatched
