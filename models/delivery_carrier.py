from odoo import api, fields, models


class DeliveryCarrier(models.Model):
    _inherit = "delivery.carrier"

    crux_carrier_name = fields.Char(
        string="Crux Carrier",
        compute="_compute_crux_carrier_name",
        store=True,
        readonly=False,
        help="Carrier name sent to Crux (supplier_provided_carrier), e.g. 'UPS'. "
        "Defaults to the shipping method's name.",
    )
    crux_method = fields.Char(
        string="Crux Shipping Method",
        help="Method sent to Crux (supplier_provided_method), e.g. 'Ground'.",
    )

    @api.depends("name")
    def _compute_crux_carrier_name(self):
        for carrier in self:
            if not carrier.crux_carrier_name:
                carrier.crux_carrier_name = carrier.name
