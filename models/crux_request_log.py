import logging
import random
import time
from datetime import timedelta

import psycopg2

from odoo import api, fields, models

_logger = logging.getLogger(__name__)

REDACTED = "********"
# The columns a log row is made of (``_crux_log_values``), in INSERT order.
LOG_COLUMNS = (
    "company_id",
    "package_id",
    "picking_id",
    "method",
    "url",
    "status",
    "duration",
    "error",
    "request_body",
    "response_body",
)
NUMBER_COLUMNS = ("status", "duration")  # 0 is a value there, not NULL


class CruxRequestLog(models.Model):
    _name = "crux.request.log"
    _description = "Crux API Request"
    _order = "id desc"
    _rec_name = "url"

    company_id = fields.Many2one("res.company", required=True, index=True, ondelete="cascade")
    package_id = fields.Many2one("crux.package", index="btree_not_null", ondelete="set null")
    picking_id = fields.Many2one("stock.picking", index="btree_not_null", ondelete="set null")
    method = fields.Char(required=True)
    url = fields.Char(string="URL", required=True)
    status = fields.Integer(help="HTTP status; 0 when no answer came back.")
    duration = fields.Float(string="Duration (s)", digits=(16, 3))
    error = fields.Char(help="Network error when Crux did not answer.")
    request_body = fields.Text()
    response_body = fields.Text()

    @api.model
    def _crux_redact(self, text, secrets):
        if not text:
            return text
        for secret in secrets:
            if secret:
                text = text.replace(secret, REDACTED)
        return text

    @api.model
    def _crux_prepare_values(self, exchange, company, package=None, secrets=None):
        """Values of one log row from a client exchange; any trace of the token is masked.

        :param secrets: the strings to mask (the company's token by default)
        """
        if secrets is None:
            secrets = [company.sudo().crux_api_token]
        return self._crux_log_values(
            exchange,
            company.id,
            package_id=package.id if package else False,
            picking_id=package.picking_id.id if package else False,
            secrets=secrets,
        )

    @api.model
    def _crux_log_values(self, exchange, company_id, package_id, picking_id, secrets):
        """Values of one log row from plain ids (the sender reads no record for them)."""
        return {
            "company_id": company_id,
            "package_id": package_id,
            "picking_id": picking_id,
            "method": exchange["method"],
            "url": self._crux_redact(exchange["url"], secrets),
            "status": exchange.get("status") or 0,
            "duration": exchange.get("duration") or 0.0,
            "error": exchange.get("error") or False,
            "request_body": self._crux_redact(exchange.get("request_body"), secrets),
            "response_body": self._crux_redact(
                (exchange.get("response_body") or "")[:20000], secrets
            ),
        }

    @api.model
    def _crux_store(self, exchanges, company, package=None):
        """Write exchanges through a cursor of their own, so they survive a rollback."""
        if not exchanges:
            return
        vals_list = [self._crux_prepare_values(ex, company, package) for ex in exchanges]
        self._crux_store_values(vals_list)

    @api.model
    def _crux_insert(self, vals_list):
        """Insert log rows (values of ``_crux_log_values``) with one INSERT, in this transaction.

        Plain SQL, as Odoo's own ``ir.logging`` handler writes its rows: a log
        row has no default, compute or side effect, and the sender writes
        hundreds of them a second.
        """
        if not vals_list:
            return
        row = "({}, %s, %s, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC')".format(
            ", ".join(["%s"] * len(LOG_COLUMNS))
        )
        params = []
        for vals in vals_list:
            params.extend(
                vals.get(column, 0) if column in NUMBER_COLUMNS else vals.get(column) or None
                for column in LOG_COLUMNS
            )
            params.extend([self.env.uid, self.env.uid])
        self.env.cr.execute(
            f"INSERT INTO crux_request_log ({', '.join(LOG_COLUMNS)}, create_uid, write_uid, "
            f"create_date, write_date) VALUES {', '.join([row] * len(vals_list))}",
            params,
        )

    @api.model
    def _crux_store_values(self, vals_list):
        if not vals_list:
            return
        for attempt in range(1, 11):
            try:
                with self.env.registry.cursor() as cr:
                    self.with_env(self.env(cr=cr, su=True))._crux_insert(vals_list)
                return
            except psycopg2.errors.SerializationFailure:
                # The key check on the transfer met a run updating it; try again.
                time.sleep(random.uniform(0.01, 0.1) * attempt)  # noqa: S311
        _logger.warning("Crux: %s request log(s) could not be stored", len(vals_list))

    @api.model
    def _cron_crux_purge(self):
        """Delete request logs older than each company's retention."""
        companies = self.sudo()._read_group([], ["company_id"])
        for (company,) in companies:
            limit = fields.Datetime.now() - timedelta(days=company.crux_log_retention_days or 30)
            old = self.sudo().search([("company_id", "=", company.id), ("create_date", "<", limit)])
            if old:
                _logger.info("Crux: purging %s request logs of company %s", len(old), company.id)
                old.unlink()
