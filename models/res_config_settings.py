import logging
import uuid

from odoo import fields, models
from odoo.exceptions import UserError

from ..crux import CruxAuthError, CruxError, CruxOrderNotFoundError

_logger = logging.getLogger(__name__)


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    crux_environment = fields.Selection(
        related="company_id.crux_environment", readonly=False, required=True
    )
    crux_api_url = fields.Char(related="company_id.crux_api_url", readonly=False)
    crux_api_token = fields.Char(
        related="company_id.crux_api_token", readonly=False, groups="base.group_system"
    )
    crux_auto_send = fields.Boolean(related="company_id.crux_auto_send", readonly=False)
    crux_default_attributes = fields.Text(
        related="company_id.crux_default_attributes", readonly=False
    )
    crux_retry_limit = fields.Integer(related="company_id.crux_retry_limit", readonly=False)
    crux_log_retention_days = fields.Integer(
        related="company_id.crux_log_retention_days", readonly=False
    )
    crux_timeout = fields.Integer(related="company_id.crux_timeout", readonly=False)
    crux_concurrency = fields.Integer(related="company_id.crux_concurrency", readonly=False)
    crux_auth_error = fields.Char(related="company_id.crux_auth_error")

    def action_crux_test_connection(self):
        """Check that the saved URL and token are accepted by Crux; say so plainly."""
        self.ensure_one()
        company = self.company_id
        error = company._crux_config_error()
        if error:
            raise UserError(error)
        exchanges = []
        # Asking for an order that cannot exist tells the three cases apart:
        # 404 = reached and authenticated, 401/403 = token refused, no answer = URL.
        probe = str(uuid.uuid4())
        try:
            with company._crux_client(on_response=exchanges.append) as client:
                client.get_order(probe)
        except CruxOrderNotFoundError:
            _logger.info("Crux: connection test of company %s succeeded", company.id)
        except CruxAuthError as exc:
            raise UserError(
                self.env._(
                    "Crux refused the token of company %(company)s: %(error)s",
                    company=company.display_name,
                    error=exc.message,
                )
            ) from None
        except CruxError as exc:
            raise UserError(
                self.env._(
                    "Could not talk to Crux at %(url)s: %(error)s",
                    url=company._crux_base_url(),
                    error=exc.message,
                )
            ) from None
        finally:
            self.env["crux.request.log"]._crux_store(exchanges, company)
        if company.crux_auth_error:
            company.crux_auth_error = False
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "success",
                "title": self.env._("Crux connection works"),
                "message": self.env._(
                    "%(url)s accepted the token of %(company)s.",
                    url=company._crux_base_url(),
                    company=company.display_name,
                ),
            },
        }
