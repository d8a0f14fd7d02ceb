from odoo import fields, models


class StockQuantPackage(models.Model):
    _inherit = "stock.quant.package"

    crux_tracking_number = fields.Char(
        string="Tracking Number",
        copy=False,
        help="This package's own tracking number. When empty, the transfer's tracking "
        "reference is reported to Crux.",
    )

    def write(self, vals):
        res = super().write(vals)
        if "crux_tracking_number" in vals:
            waiting = self.env["crux.package"].search(
                [("quant_package_id", "in", self.ids), ("state", "in", ("waiting", "failed"))]
            )
            waiting.picking_id.filtered(lambda p: p.state == "done")._crux_enqueue(auto=True)
        return res
