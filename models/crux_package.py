"""Crux packages: one per tracking number reported to Crux, and the engine that sends them.

Sending never happens inside a user's or a validation's transaction. The engine
works on a cursor of its own and commits at every step:

1. claim: due packages are locked (``FOR UPDATE SKIP LOCKED``), marked
   ``sending`` and tagged with a session-level advisory lock, then committed;
   (every ``cr.commit()`` here is on that private cursor, never on the
   caller's: it is what makes "marked in flight" and "result stored" durable)
2. exchange: the HTTP calls run in a small thread pool; the threads touch no
   ORM and no cursor;
3. record: outcomes are written and committed as they come back, those back
   within ``GATHER_SECONDS`` of the first one together (at most
   ``GATHER_MAX``), while the next requests are already under way; at the end
   of the batch, one chatter note per transfer names the package_uuids
   (``note_pending``).

A run that dies between 1 and 3 leaves packages in ``sending`` whose advisory
lock died with its connection: the next run takes them over and, because the
outcome is unknown, reads Crux's order detail before posting again.
"""

import logging
import random
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import timedelta

import psycopg2

from odoo import api, fields, models

from ..crux import CruxAuthError, CruxClient, CruxError, CruxOrgTypeError

_logger = logging.getLogger(__name__)

# Namespace of the advisory locks held on crux_package ids while they are sent.
LOCK_NAMESPACE = 7_277_890
# Namespace of the advisory locks that serialize recording on one transfer.
PICKING_LOCK_NAMESPACE = 7_277_891
BATCH_SIZE = 100
RETRY_BASE_SECONDS = 60
RETRY_MAX_SECONDS = 3600
RECORD_TRIES = 10
# Outcomes that come back within this many seconds of each other are stored in
# one transaction: the fixed cost of a transaction (transfer locks, commit,
# status recompute) is shared, and in the meantime the HTTP thread has the GIL
# to itself. An outcome is thus in memory only, at worst, for this long plus
# one recording; a run that dies then leaves the package in flight, checked on
# Crux before it is posted again.
GATHER_SECONDS = 0.02
GATHER_MAX = 50
CONCURRENCY_ERRORS = (
    psycopg2.errors.SerializationFailure,
    psycopg2.errors.DeadlockDetected,
    psycopg2.errors.LockNotAvailable,
)

STATES = [
    ("waiting", "Waiting for Tracking Number"),
    ("to_send", "To Send"),
    ("sending", "Sending"),
    ("sent", "Sent"),
    ("failed", "Failed"),
]


class CruxPackage(models.Model):
    _name = "crux.package"
    _description = "Crux Package"
    # By id, not by transfer: ordering on a many2one joins the transfers, and
    # every recompute of a transfer's Crux status reads its packages.
    _order = "id"

    name = fields.Char(required=True, readonly=True)
    picking_id = fields.Many2one(
        "stock.picking",
        string="Transfer",
        required=True,
        readonly=True,
        index=True,
        ondelete="cascade",
    )
    company_id = fields.Many2one(
        related="picking_id.company_id", store=True, index=True, readonly=True
    )
    sale_order_id = fields.Many2one("sale.order", readonly=True, ondelete="set null")
    order_uuid = fields.Char(string="Crux Order", readonly=True)
    quant_package_id = fields.Many2one(
        "stock.quant.package", string="Odoo Package", readonly=True, ondelete="set null"
    )
    tracking_number = fields.Char(readonly=True)
    state = fields.Selection(STATES, default="to_send", required=True, readonly=True, index=True)
    # Only the sender reads it: keep it out of the prefetch that follows every commit.
    payload = fields.Json(
        readonly=True, prefetch=False, help="What is (or was) posted to Crux for this package."
    )
    line_ids = fields.One2many("crux.package.line", "package_id", string="Lines", readonly=True)
    package_uuid = fields.Char(string="Crux package_uuid", readonly=True, copy=False, index=True)
    attempt_count = fields.Integer(string="Attempts", readonly=True)
    next_attempt = fields.Datetime(readonly=True, index=True)
    sending_since = fields.Datetime(readonly=True)
    needs_check = fields.Boolean(
        readonly=True,
        help="An earlier attempt may have reached Crux without an answer: Crux's order "
        "detail is read before posting again.",
    )
    recovered = fields.Boolean(
        string="Found on Crux",
        readonly=True,
        help="Crux already had this tracking after an attempt whose answer was lost; "
        "its package_uuid could not be recovered.",
    )
    last_error = fields.Text(readonly=True)
    error_kind = fields.Selection(
        [
            ("transient", "Crux Unreachable"),
            ("auth", "Configuration"),
            ("data", "Data in Odoo"),
            ("crux", "Rejected by Crux"),
        ],
        readonly=True,
    )
    sent_date = fields.Datetime(readonly=True)
    # Set with the outcome, cleared once the transfer's chatter names the
    # package_uuid: the note is posted at the end of the batch (or by the next
    # run, if this one died in between), never twice.
    note_pending = fields.Boolean(readonly=True, copy=False)
    log_ids = fields.One2many("crux.request.log", "package_id", string="Requests")

    def init(self):
        # One Crux package per Odoo package (or per transfer for unpacked lines),
        # even when two workers prepare the same transfer at once.
        self.env.cr.execute(
            """CREATE UNIQUE INDEX IF NOT EXISTS crux_package_picking_quant_package_uniq
               ON crux_package (picking_id, COALESCE(quant_package_id, 0))"""
        )
        self.env.cr.execute(
            """CREATE INDEX IF NOT EXISTS crux_package_note_pending_idx
               ON crux_package (id) WHERE note_pending"""
        )
        # The queue: a claim reads the due packages in this order, and stays
        # small however many sent packages the table holds.
        self.env.cr.execute(
            """CREATE INDEX IF NOT EXISTS crux_package_due_idx
               ON crux_package (next_attempt NULLS FIRST, id) WHERE state = 'to_send'"""
        )

    # Actions -------------------------------------------------------------

    def action_crux_retry(self):
        """Send these packages' transfers again (button on a failed package)."""
        return self.picking_id.action_crux_send()

    # Preparation ---------------------------------------------------------

    @api.model
    def _crux_values_from_prepared(self, picking, prepared):
        """crux.package values from one dict of stock.picking._crux_prepare_packages()."""
        if prepared["error"]:
            state, kind = "failed", "data"
        elif not prepared["tracking_number"]:
            state, kind = "waiting", False
        else:
            state, kind = "to_send", False
        return {
            "name": prepared["name"],
            "picking_id": picking.id,
            "sale_order_id": picking.sale_id.id,
            "order_uuid": prepared["order_uuid"],
            "quant_package_id": prepared["quant_package"].id,
            "tracking_number": prepared["tracking_number"],
            "payload": prepared["payload"],
            "state": state,
            "error_kind": kind,
            "last_error": prepared["error"] or False,
            "attempt_count": 0,
            "next_attempt": False,
            "line_ids": [fields.Command.clear()]
            + [fields.Command.create(line) for line in prepared["lines"]],
        }

    def _crux_requeue(self):
        """Put failed packages back in the queue, as they are (no rebuild)."""
        todo = self.filtered(lambda p: p.state == "failed")
        todo.write(
            {"state": "to_send", "attempt_count": 0, "next_attempt": False, "error_kind": False}
        )
        if todo:
            self.env.ref("crux_tracking.ir_cron_crux_send")._trigger()

    # Engine --------------------------------------------------------------

    @api.model
    def _cron_crux_send_pending(self):
        """Scheduled action: send every due package, then plan the next run."""
        stats = self._crux_send_due(time_limit=240)
        cron = self.env.ref("crux_tracking.ir_cron_crux_send")
        if stats["remaining"]:
            cron._trigger()
        else:
            self.env.cr.execute(
                "SELECT MIN(next_attempt) FROM crux_package "
                "WHERE state = 'to_send' AND next_attempt IS NOT NULL"
            )
            (next_at,) = self.env.cr.fetchone()
            if next_at:
                cron._trigger(at=next_at)
        return stats

    @api.model
    def _crux_send_due(self, package_ids=None, batch_size=BATCH_SIZE, time_limit=None):
        """Send due packages exactly once, on a cursor of its own.

        :param package_ids: only these packages, due or not (a person asked);
            by default every package whose next attempt has come
        :param time_limit: seconds after which no new batch is started
        :return: Counter with ``sent``, ``failed``, ``retry``, ``remaining``
        """
        stats = Counter()
        # The private cursor must see what the caller's transaction holds.
        self.env.flush_all()
        deadline = (fields.Datetime.now() + timedelta(seconds=time_limit)) if time_limit else None
        with self.env.registry.cursor() as cr:
            # The sender changes no tracked field of a transfer (only its Crux
            # status, which is not tracked): skip the field tracking that every
            # recompute of that status would otherwise prepare and compare.
            env = self.env(cr=cr, context=dict(self.env.context, mail_notrack=True))
            packages = env["crux.package"]
            try:
                packages._crux_recover_orphans(package_ids)
                packages._crux_post_pending_notes()  # left by a run that died
                paused = set()
                verified = set()  # companies whose credentials Crux accepted in this run
                while True:
                    batch = packages._crux_claim(package_ids, batch_size, paused)
                    if not batch:
                        break
                    if package_ids is not None:
                        # A person asked for these: one attempt each, no loop.
                        claimed = set(batch.ids)
                        package_ids = [pid for pid in package_ids if pid not in claimed]
                    batch._crux_process_batch(stats, paused, verified)
                    packages._crux_post_pending_notes(batch.ids)
                    cr.execute("SELECT pg_advisory_unlock_all()")
                    if deadline and fields.Datetime.now() >= deadline:
                        break
                    if package_ids is not None and not package_ids:
                        break
                cr.execute(
                    "SELECT COUNT(*) FROM crux_package WHERE state = 'to_send' "
                    "AND (next_attempt IS NULL OR next_attempt <= %s)",
                    [fields.Datetime.now()],
                )
                stats["remaining"] = cr.fetchone()[0]
            finally:
                cr.execute("SELECT pg_advisory_unlock_all()")
        self.env.invalidate_all()
        return stats

    @api.model
    def _crux_recover_orphans(self, package_ids=None):
        """Take over packages left in ``sending`` by a run that died.

        A package is an orphan when nobody holds its advisory lock: the lock
        is session-level, so it dies with the connection of a killed worker.
        """
        cr = self.env.cr
        cr.execute(*_only(package_ids, "SELECT id FROM crux_package WHERE state = 'sending'"))
        candidates = [row[0] for row in cr.fetchall()]
        if not candidates:
            return
        cr.execute(
            "SELECT id FROM unnest(%s::int[]) AS id WHERE pg_try_advisory_lock(%s, id)",
            [candidates, LOCK_NAMESPACE],
        )
        orphans = [row[0] for row in cr.fetchall()]
        # End the snapshot taken before the locks: what the previous owner
        # committed just before letting go must be visible now.
        cr.commit()  # pylint: disable=invalid-commit
        if orphans:
            cr.execute(
                """UPDATE crux_package SET state = 'to_send', needs_check = TRUE,
                          next_attempt = NULL, sending_since = NULL
                    WHERE id = ANY(%s) AND state = 'sending' RETURNING id""",
                [orphans],
            )
            recovered = [row[0] for row in cr.fetchall()]
            cr.commit()  # pylint: disable=invalid-commit
            if recovered:
                _logger.warning(
                    "Crux: %s package(s) were left in flight by an interrupted run; "
                    "they will be checked on Crux before being sent again: %s",
                    len(recovered),
                    recovered,
                )
        cr.execute("SELECT pg_advisory_unlock_all()")
        self.invalidate_model()

    @api.model
    def _crux_claim(self, package_ids, limit, paused_company_ids=()):
        """Lock, mark ``sending`` and commit the next packages to send."""
        cr = self.env.cr
        where = ["p.state = 'to_send'"]
        params = []
        if package_ids is not None:
            where.append("p.id = ANY(%s)")
            params.append(list(package_ids))
        else:
            where.append("(p.next_attempt IS NULL OR p.next_attempt <= %s)")
            params.append(fields.Datetime.now())
            where.append(
                "p.company_id NOT IN (SELECT id FROM res_company WHERE crux_auth_error IS NOT NULL)"
            )
        if paused_company_ids:
            where.append("p.company_id <> ALL(%s)")
            params.append(list(paused_company_ids))
        for _try in range(5):
            try:
                cr.execute(
                    f"""SELECT p.id FROM crux_package p WHERE {" AND ".join(where)}
                        ORDER BY p.next_attempt NULLS FIRST, p.id
                        LIMIT %s FOR UPDATE OF p SKIP LOCKED""",
                    [*params, limit],
                )
                ids = [row[0] for row in cr.fetchall()]
                if not ids:
                    cr.commit()  # pylint: disable=invalid-commit
                    return self.browse()
                cr.execute(
                    "SELECT id FROM unnest(%s::int[]) AS id WHERE pg_try_advisory_lock(%s, id)",
                    [ids, LOCK_NAMESPACE],
                )
                ids = [row[0] for row in cr.fetchall()]
                if ids:
                    cr.execute(
                        """UPDATE crux_package
                              SET state = 'sending', sending_since = %s, write_date = %s
                            WHERE id = ANY(%s)""",
                        [fields.Datetime.now(), fields.Datetime.now(), ids],
                    )
                cr.commit()  # pylint: disable=invalid-commit
                self.invalidate_model()
                return self.browse(sorted(ids))
            except psycopg2.errors.SerializationFailure:
                # Another run committed one of these rows after our snapshot began.
                cr.rollback()
        return self.browse()

    def _crux_jobs(self):
        """Plain-data description of the HTTP work for this batch (no ORM in threads).

        Two plain queries: the payloads come as psycopg2 decodes them, without
        the copies the ORM makes of JSON values, and no record cache is filled
        that the next commit would throw away.
        """
        cr = self.env.cr
        cr.execute(
            """SELECT package_id, line_item_uuid, quantity FROM crux_package_line
                WHERE package_id = ANY(%s) ORDER BY id""",
            [self.ids],
        )
        lines = {}
        for package_id, line_item_uuid, quantity in cr.fetchall():
            lines.setdefault(package_id, []).append((line_item_uuid, quantity or 0))
        cr.execute(
            """SELECT id, company_id, picking_id, attempt_count, order_uuid, payload,
                      tracking_number, needs_check
                 FROM crux_package WHERE id = ANY(%s) ORDER BY id""",
            [self.ids],
        )
        return [
            {
                "id": package_id,
                "company_id": company_id,
                "picking_id": picking_id,
                "attempt_count": attempt_count or 0,
                "order_uuid": order_uuid,
                "payload": payload,
                "tracking_number": tracking_number,
                "needs_check": bool(needs_check),
                "lines": lines.get(package_id, []),
            }
            for (
                package_id,
                company_id,
                picking_id,
                attempt_count,
                order_uuid,
                payload,
                tracking_number,
                needs_check,
            ) in cr.fetchall()
        ]

    def _crux_process_batch(self, stats, paused, verified):
        """Exchange this claimed batch with Crux and record every outcome."""
        companies = self.company_id
        config = {}
        for company in companies:
            error = company._crux_config_error()
            config[company.id] = {
                "error": error,
                "values": company._crux_client_values(),
                "concurrency": company.crux_concurrency or 1,
                "secrets": [company.sudo().crux_api_token],
                "retry_limit": company.crux_retry_limit or 1,
                "auth_flagged": bool(company.crux_auth_error),
            }
        # Plain values read once (``config``): every commit below empties the ORM cache.
        for group in _exchange_all(self._crux_jobs(), config, verified):
            # Prefetch within the group: after each commit, reading a field of
            # one package must not fetch the whole batch again.
            records = self.browse([job_id for job_id, _outcome in group])
            items = list(zip(records, [outcome for _job_id, outcome in group], strict=True))
            if len(items) > 1 and not self._crux_record_with_retries(items, paused, config):
                # One outcome that cannot be stored must not hold the others back.
                for item in items:
                    self._crux_record_with_retries([item], paused, config, log_failure=True)
            elif len(items) == 1:
                self._crux_record_with_retries(items, paused, config, log_failure=True)
            for _package, outcome in items:
                stats[outcome.get("stat") or "error"] += 1

    def _crux_record_with_retries(self, items, paused, config, log_failure=False):
        """Record and commit outcomes that came back together, in one transaction.

        Runs sending packages of one transfer take turns on an advisory lock
        per transfer (taken in id order), then start a fresh snapshot: under
        REPEATABLE READ a row lock taken inside the transaction would leave it
        with a snapshot older than the other run's commit. Anything else that
        updates the transfer meanwhile makes the write fail to serialize; it is
        then simply recorded again.

        :param items: list of (package, outcome); ``outcome["job"]`` holds the
            package's plain values read when the batch was claimed (the package
            is ours until it is recorded), so nothing is read back before writing
        :param config: this batch's plain values per company id
        :return: whether every outcome was stored
        """
        cr = self.env.cr
        Log = self.env["crux.request.log"]
        jobs = [outcome["job"] for _package, outcome in items]
        log_values = [
            Log._crux_log_values(
                exchange,
                job["company_id"],
                package_id=job["id"],
                picking_id=job["picking_id"],
                secrets=config[job["company_id"]]["secrets"],
            )
            for job, (_package, outcome) in zip(jobs, items, strict=True)
            for exchange in outcome.get("exchanges") or ()
        ]
        picking_ids = sorted({job["picking_id"] for job in jobs})
        locked = []
        for attempt in range(1, RECORD_TRIES + 1):
            try:
                # One query, in id order (two runs never wait on each other in a cycle).
                cr.execute(
                    "SELECT pg_advisory_lock(%s, id) FROM unnest(%s::int[]) AS id",
                    [PICKING_LOCK_NAMESPACE, picking_ids],
                )
                locked = picking_ids
                cr.commit()  # pylint: disable=invalid-commit
                for package, outcome in items:
                    outcome.pop("auth_flagged", None)
                    package._crux_record(outcome, paused, config[outcome["job"]["company_id"]])
                # This cursor belongs to the sender alone, so the log commits
                # with the outcomes and no user transaction can roll it back.
                Log._crux_insert(log_values)
                cr.commit()  # pylint: disable=invalid-commit
                for _package, outcome in items:
                    if "auth_flagged" in outcome:
                        company_id = outcome["job"]["company_id"]
                        config[company_id]["auth_flagged"] = outcome.pop("auth_flagged")
                return True
            except CONCURRENCY_ERRORS:
                cr.rollback()
                if attempt == RECORD_TRIES:
                    break
                time.sleep(random.uniform(0.01, 0.1) * attempt)  # noqa: S311
            except Exception:
                cr.rollback()
                break
            finally:
                if locked:
                    cr.execute(
                        "SELECT pg_advisory_unlock(%s, id) FROM unnest(%s::int[]) AS id",
                        [PICKING_LOCK_NAMESPACE, locked],
                    )
                locked = []
        for _package, outcome in items:
            outcome.pop("stat", None)
        if not log_failure:
            return False
        # Never lose the outcome of a request that went out: the package stays
        # in ``sending`` and is checked on Crux before the next attempt; the
        # requests themselves are still logged, on a cursor of their own.
        _logger.exception(
            "Crux: could not record the outcome of package(s) %s",
            [package.id for package, _outcome in items],
        )
        Log._crux_store_values(log_values)
        return False

    @api.model
    def _crux_post_pending_notes(self, package_ids=None):
        """Post the chatter notes of sent packages, once.

        Runs on the sender's private cursor and commits: the notes of a batch
        go out together, one per transfer, after its outcomes are stored.

        :param package_ids: only these packages; by default every pending note
        """
        cr = self.env.cr
        query, params = _only(package_ids, "SELECT id FROM crux_package WHERE note_pending")
        try:
            cr.commit()  # pylint: disable=invalid-commit
            cr.execute(f"{query} ORDER BY id FOR UPDATE SKIP LOCKED", params)
            ids = [row[0] for row in cr.fetchall()]
            if ids:
                packages = self.browse(ids)
                packages.picking_id._crux_notify_sent(packages)
                packages.write({"note_pending": False})
            cr.commit()  # pylint: disable=invalid-commit
        except CONCURRENCY_ERRORS:
            # Another run posted them in the meantime.
            cr.rollback()
        except Exception:
            # A note must not stop the sending: they stay pending for the next run.
            cr.rollback()
            _logger.exception("Crux: could not post the notes of sent packages")

    def _crux_record(self, outcome, paused, company_config):
        """Store one exchange's outcome on the package and tell the people concerned.

        :param outcome: from ``_exchange_all``; ``outcome["job"]`` holds the
            package's values read when it was claimed
        :param company_config: this batch's plain values of the package's company
            (``auth_flagged``: whether its credentials were flagged as refused)
        """
        self.ensure_one()
        company = self.company_id
        if outcome.get("skipped"):
            self.write({"state": "to_send"})
            outcome["stat"] = "skipped"
            return
        job = outcome["job"]
        attempts = job["attempt_count"] + (0 if outcome.get("no_attempt") else 1)
        if outcome.get("recovered") or outcome.get("package_uuid"):
            self.write(
                {
                    "state": "sent",
                    "package_uuid": outcome.get("package_uuid") or False,
                    "recovered": bool(outcome.get("recovered")),
                    "sent_date": fields.Datetime.now(),
                    "attempt_count": attempts,
                    "needs_check": False,
                    "last_error": False,
                    "error_kind": False,
                    "next_attempt": False,
                    "sending_since": False,
                    "note_pending": True,
                }
            )
            outcome["stat"] = "sent"  # the transfer's note follows at the end of the batch
            if company_config["auth_flagged"]:
                company.sudo().crux_auth_error = False
                outcome["auth_flagged"] = False  # into company_config once committed
            return
        error = outcome["error"]
        vals = {
            "attempt_count": attempts,
            "last_error": error.message,
            "sending_since": False,
            "needs_check": job["needs_check"] or error.outcome_unknown,
        }
        limit = company_config["retry_limit"]
        if error.retryable and attempts < limit:
            vals.update(
                state="to_send",
                error_kind="transient",
                next_attempt=fields.Datetime.now()
                + timedelta(seconds=self._crux_backoff(attempts, error.retry_after)),
            )
            self.write(vals)
            outcome["stat"] = "retry"
            return
        if error.retryable:
            kind = "transient"
            vals["last_error"] = self.env._(
                "%(error)s Gave up after %(count)s attempts; press Retry once Crux answers again.",
                error=error.message,
                count=attempts,
            )
        elif isinstance(error, (CruxAuthError, CruxOrgTypeError)):
            kind = "auth"
        elif outcome.get("data_error"):
            kind = "data"
        else:
            kind = "crux"
        vals.update(state="failed", error_kind=kind, next_attempt=False)
        self.write(vals)
        outcome["stat"] = "failed"
        if kind == "auth":
            paused.add(company.id)
            if company.crux_auth_error:
                return  # already said once for this company
            company.sudo().crux_auth_error = error.message
            outcome["auth_flagged"] = True  # into company_config once committed
            _logger.warning(
                "Crux: company %s: sending paused, Crux refused the configuration: %s",
                company.id,
                error.message,
            )
        self.picking_id._crux_notify_failed(self)

    @api.model
    def _crux_backoff(self, attempts, retry_after=None):
        """Seconds before the next attempt: exponential with jitter, at least Retry-After."""
        base = float(
            self.env["ir.config_parameter"]
            .sudo()
            .get_param("crux_tracking.retry_base_seconds", RETRY_BASE_SECONDS)
        )
        delay = min(RETRY_MAX_SECONDS, base * (2 ** (attempts - 1)))
        delay *= random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security
        return max(delay, retry_after or 0.0)


def _only(package_ids, query):
    """``query`` (a WHERE clause on crux_package) limited to ``package_ids`` unless None.

    :return: (query, params) for ``cr.execute``
    """
    if package_ids is None:
        return query, []
    return f"{query} AND id = ANY(%s)", [list(package_ids)]


def _tracking_on_crux(detail, tracking_number, lines):
    """Whether Crux's order detail already holds this package's tracking and quantities."""
    by_uuid = {
        item.get("line_item_uuid"): item
        for item in detail.get("line_items") or []
        if isinstance(item, dict)
    }
    for line_item_uuid, quantity in lines:
        item = by_uuid.get(line_item_uuid)
        entries = (item or {}).get("tracking") or []
        if not any(
            isinstance(entry, dict)
            and str(entry.get("tracking_number")) == str(tracking_number)
            and int(float(entry.get("quantity") or 0)) == quantity
            for entry in entries
        ):
            return False
    return bool(lines)


def _exchange_all(jobs, config, verified):
    """Run the HTTP calls of a batch, in parallel per company's limit.

    Plain Python: no ORM and no cursor are touched here. The first job of a
    company not yet ``verified`` in this run goes alone, so a refused token
    costs one request, not a burst.
    Outcomes are yielded as they come back, in groups of those back within
    ``GATHER_SECONDS`` of the first one (at most ``GATHER_MAX``), so the caller
    stores them right after their requests while the other requests are still
    under way.
    :return: generator of lists of (job id, outcome dict)
    """
    clients = []
    lock = threading.Lock()
    local = threading.local()

    def client_for(company_id):
        cache = getattr(local, "clients", None)
        if cache is None:
            cache = local.clients = {}
        if company_id not in cache:
            client = CruxClient(**config[company_id]["values"])
            cache[company_id] = client
            with lock:
                clients.append(client)
        return cache[company_id]

    def run(job):
        exchanges = []
        outcome = {"exchanges": exchanges, "job": job}
        cfg = config[job["company_id"]]
        if cfg["error"]:
            outcome.update(error=CruxAuthError(cfg["error"]), no_attempt=True)
            return job["id"], outcome
        if not job["order_uuid"] or not job["payload"]:
            outcome.update(error=CruxError("Nothing to send."), data_error=True, no_attempt=True)
            return job["id"], outcome
        client = client_for(job["company_id"])
        client.on_response = exchanges.append
        try:
            if job["needs_check"]:
                detail = client.get_order(job["order_uuid"])
                if _tracking_on_crux(detail, job["tracking_number"], job["lines"]):
                    outcome["recovered"] = True
                    return job["id"], outcome
            outcome["package_uuid"] = client.add_tracking(job["order_uuid"], job["payload"])
        except CruxError as exc:
            outcome["error"] = exc
        return job["id"], outcome

    try:
        by_company = {}
        for job in jobs:
            by_company.setdefault(job["company_id"], []).append(job)
        for company_id, company_jobs in by_company.items():
            rest = company_jobs
            if company_id not in verified:
                first = run(company_jobs[0])
                yield [first]
                rest = company_jobs[1:]
                if isinstance(first[1].get("error"), (CruxAuthError, CruxOrgTypeError)):
                    yield [
                        (job["id"], {"skipped": True, "exchanges": [], "job": job}) for job in rest
                    ]
                    continue
                verified.add(company_id)
            if not rest:
                continue
            # Even one worker runs beside the caller: the next request goes out
            # while the previous outcome is being recorded (one at a time on
            # the wire, as configured; the recording never waits on Crux).
            workers = max(1, min(config[company_id]["concurrency"], len(rest)))
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crux_send")
            try:
                pending = {pool.submit(run, job) for job in rest}
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    gather_until = time.monotonic() + GATHER_SECONDS
                    while pending and len(done) < GATHER_MAX:
                        left = gather_until - time.monotonic()
                        if left <= 0:
                            break
                        more, pending = wait(pending, timeout=left, return_when=FIRST_COMPLETED)
                        done |= more
                    yield [future.result() for future in done]
            finally:
                # When the caller stops early, requests not yet started never go out.
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        for client in clients:
            client.close()
