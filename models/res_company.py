import logging

from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..crux import CruxClient
from ..crux.client import PRODUCTION_URL, SANDBOX_URL

_logger = logging.getLogger(__name__)

CRUX_CONFIG_FIELDS = {"crux_environment", "crux_api_url", "crux_api_token"}


class ResCompany(models.Model):
    _inherit = "res.company"

    crux_environment = fields.Selection(
        [("sandbox", "Crux sandbox"), ("production", "Crux production"), ("custom", "Custom URL")],
        default="sandbox",
        required=True,
    )
    crux_api_url = fields.Char(
        string="Crux API URL",
        help="Base URL used when the environment is 'Custom URL', e.g. a local Crux sandbox.",
    )
    crux_api_token = fields.Char(
        string="Crux API Token",
        groups="base.group_system",
        copy=False,
        help="The supplier's TIMP API token, sent as 'Authorization: Token ...'.",
    )
    crux_auto_send = fields.Boolean(
        string="Send Tracking to Crux Automatically",
        default=True,
        help="Send the packages of a delivery to Crux as soon as it is validated.",
    )
    crux_default_attributes = fields.Text(
        string="Default Package Attributes",
        help="Sent with every package, one per line as 'name = value'.",
    )
    crux_retry_limit = fields.Integer(
        string="Crux Attempts",
        default=5,
        help="How many times a package is tried when Crux is unreachable or busy "
        "before it is marked failed.",
    )
    crux_log_retention_days = fields.Integer(
        string="Keep Crux Request Logs (days)",
        default=30,
    )
    crux_timeout = fields.Integer(
        string="Crux Timeout (seconds)",
        default=30,
    )
    crux_concurrency = fields.Integer(
        string="Parallel Crux Requests",
        default=4,
        help="How many packages are sent to Crux at the same time when a backlog is drained.",
    )
    crux_auth_error = fields.Char(
        string="Crux Credentials Problem",
        copy=False,
        readonly=True,
        help="Set when Crux refused the URL or token; sending for this company pauses "
        "until the configuration changes.",
    )

    @api.constrains("crux_default_attributes")
    def _check_crux_default_attributes(self):
        for company in self:
            try:
                company._crux_default_attributes()
            except ValueError as exc:
                raise ValidationError(
                    self.env._(
                        "Company %(company)s, field Default Package Attributes: %(error)s",
                        company=company.display_name,
                        error=str(exc),
                    )
                ) from None

    @api.constrains(
        "crux_retry_limit", "crux_timeout", "crux_concurrency", "crux_log_retention_days"
    )
    def _check_crux_numbers(self):
        for company in self:
            if (
                company.crux_retry_limit < 1
                or company.crux_timeout < 1
                or company.crux_concurrency < 1
                or company.crux_log_retention_days < 1
            ):
                raise ValidationError(
                    self.env._(
                        "Company %(company)s: Crux attempts, timeout, parallel requests and log "
                        "retention must be at least 1.",
                        company=company.display_name,
                    )
                )

    def write(self, vals):
        if CRUX_CONFIG_FIELDS & set(vals):
            # New credentials: forget the old refusal and give packages that
            # failed only because of it another chance.
            vals = dict(vals, crux_auth_error=False)
            res = super().write(vals)
            self.env["crux.package"].sudo().search(
                [
                    ("company_id", "in", self.ids),
                    ("state", "=", "failed"),
                    ("error_kind", "=", "auth"),
                ]
            )._crux_requeue()
            return res
        return super().write(vals)

    def _crux_default_attributes(self):
        """Parse the default package attributes into Crux's list of name/value dicts.

        :raises ValueError: on a line that is not ``name = value``.
        """
        self.ensure_one()
        attributes = []
        for number, line in enumerate((self.crux_default_attributes or "").splitlines(), 1):
            if not line.strip():
                continue
            name, sep, value = line.partition("=")
            if not sep or not name.strip():
                raise ValueError(self.env._("line %(number)s is not 'name = value'", number=number))
            attributes.append({"attribute_name": name.strip(), "attribute_value": value.strip()})
        return attributes

    def _crux_base_url(self):
        self.ensure_one()
        if self.crux_environment == "production":
            return PRODUCTION_URL
        if self.crux_environment == "sandbox":
            return SANDBOX_URL
        return (self.crux_api_url or "").strip()

    def _crux_client_values(self):
        """Plain values to build a CruxClient from; the token is read with sudo."""
        self.ensure_one()
        return {
            "base_url": self._crux_base_url(),
            "token": self.sudo().crux_api_token,
            "timeout": self.crux_timeout or 30,
        }

    def _crux_config_error(self):
        """A readable message when the company cannot talk to Crux, else False."""
        self.ensure_one()
        values = self._crux_client_values()
        if not values["base_url"]:
            return self.env._(
                "Company %(company)s: no Crux API URL is configured (Inventory > Settings > Crux).",
                company=self.display_name,
            )
        if not values["token"]:
            return self.env._(
                "Company %(company)s: no Crux API token is configured "
                "(Inventory > Settings > Crux).",
                company=self.display_name,
            )
        return False

    def _crux_client(self, on_response=None):
        self.ensure_one()
        return CruxClient(on_response=on_response, **self._crux_client_values())
