"""Benchmark of crux_tracking against the local Crux sandbox (issue 6).

Every figure is the add-on measured against a baseline taken in the same run:
the median of several runs of each, printed as a ratio with the absolute
numbers beside it. Nothing here is a test: a missed goal is reported as
"MISSED", it does not fail the run (unless ``--strict``). A broken result
(a package not sent, or sent twice) always fails it.

It works on a throw-away database of its own (created with tools/install_db.py,
with real cursors and commits) and the Crux sandbox in a process of its own
on a free loopback port: no traffic leaves 127.0.0.1. See bench/README.md.

    make bench                        # full run: about 7.5 minutes on 2 cores, install included
    make bench BENCH_ARGS=--quick     # smoke run: about 3 minutes
    python3 bench/bench_crux.py --help
"""

import argparse
import contextlib
import copy
import cProfile
import gc
import io
import json
import math
import os
import platform
import pstats
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg2
import psycopg2.sql
import requests

import odoo
from odoo import SUPERUSER_ID, api, sql_db
from odoo.fields import Command
from odoo.modules.registry import Registry
from odoo.tools import config

ROOT = Path(__file__).resolve().parent.parent
MODULE = "crux_tracking"
DB_HOST = "127.0.0.1"
#: Packages the engine claims at once (crux_package.BATCH_SIZE); the warm-up set's size.
BATCH = 50
#: Quantity of every sandbox order line: posting the same payloads again never runs out.
UNLIMITED = 10**9

FULL = {
    "packages": 1000,
    "per_picking": 10,
    "lines": 5,
    "repeats": 3,
    "a_repeats": 30,
    "c_packages": 50,
    "d_repeats": 1,
    "e_repeats": 1,
}
QUICK = {
    "packages": 150,
    "per_picking": 10,
    "lines": 5,
    "repeats": 2,
    "a_repeats": 3,
    "c_packages": 20,
    "d_repeats": 1,
    "e_repeats": 1,
}


class BenchError(Exception):
    """The add-on did something wrong (not merely slow): the run fails."""


# --------------------------------------------------------------------------- helpers


def median(values):
    return statistics.median(values) if values else float("nan")


def fmt_runs(values, unit, digits=3):
    return ", ".join(f"{value:.{digits}f}" for value in values) + f" {unit}"


@contextlib.contextmanager
def odoo_env(registry, uid=SUPERUSER_ID):
    """An environment on a fresh cursor; committed when the block ends without error."""
    with registry.cursor() as cr:
        yield api.Environment(cr, uid, {})


class MemoryProbe:
    """Peak RSS growth (sampled every 5 ms) of a block, and its tracemalloc peak if asked."""

    interval = 0.005

    def __init__(self, trace=False):
        self.trace = trace
        self.process = psutil.Process()
        self.peak = 0
        self.rss_delta = 0
        self._rss0 = 0
        self._rss_peak = 0
        self._traced0 = 0
        self._stop = threading.Event()
        self._thread = None

    def _sample(self):
        while not self._stop.wait(self.interval):
            self._rss_peak = max(self._rss_peak, self.process.memory_info().rss)

    def __enter__(self):
        gc.collect()
        self._rss0 = self._rss_peak = self.process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, name="bench-rss", daemon=True)
        self._thread.start()
        if self.trace:
            tracemalloc.start()
            self._traced0 = tracemalloc.get_traced_memory()[0]
        return self

    def __exit__(self, *exc_info):
        if self.trace:
            self.peak = tracemalloc.get_traced_memory()[1] - self._traced0
            tracemalloc.stop()
        self._stop.set()
        self._thread.join()
        self._rss_peak = max(self._rss_peak, self.process.memory_info().rss)
        self.rss_delta = self._rss_peak - self._rss0


@dataclass
class Run:
    """One timed drain or loop."""

    seconds: float
    count: int
    queries: int = 0
    peak: int = 0
    rss_delta: int = 0
    duplicates: int = 0
    stats: dict = field(default_factory=dict)

    @property
    def rate(self):
        return self.count / self.seconds

    @property
    def queries_per_package(self):
        return self.queries / self.count


@dataclass
class Row:
    figure: str
    baseline: str
    addon: str
    ratio: float | None
    goal: str
    verdict: str


class RemoteSandbox:
    """The Crux sandbox in a process of its own, driven over its ``/_sandbox/`` endpoints.

    Crux is a remote service: the CPU time of its answers must not be charged
    to the process being measured (one GIL shared by the sandbox's threads,
    the HTTP threads and the ORM would make every side pay for the others).
    Same interface as the in-process ``CruxSandbox`` for what the bench uses.
    """

    def __init__(self, token):
        self.token = token
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(  # noqa: S603 - our own script, no shell
            [
                sys.executable,
                str(ROOT / "sandbox" / "crux_sandbox.py"),
                "--port",
                str(port),
                f"--token={token}",  # one argument: a random token may start with "-"
                "--no-seed",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.session = requests.Session()
        deadline = time.monotonic() + 20
        while True:
            try:
                self._call("GET", "/_sandbox/delay/")
                break
            except requests.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise BenchError("the Crux sandbox process did not start") from None
                time.sleep(0.1)

    def _call(self, method, path, payload=None):
        response = self.session.request(method, self.url + path, json=payload, timeout=120)
        response.raise_for_status()
        return response.json()

    def add_order(self, **kwargs):
        return self._call("POST", "/_sandbox/orders/", kwargs)

    def packages(self):
        return self._call("GET", "/_sandbox/packages/")

    @property
    def requests(self):
        return self._call("GET", "/_sandbox/requests/")

    @property
    def delay(self):
        return self._call("GET", "/_sandbox/delay/")["delay"]

    @delay.setter
    def delay(self, value):
        self._call("POST", "/_sandbox/delay/", {"delay": value})

    def stop(self):
        self.session.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def post_loop(url, token, jobs):
    """Post (order_uuid, payload) jobs one after the other with a bare requests.Session.

    :return: seconds taken
    """
    headers = {
        "Authorization": f"Token {token}",
        "Accept": "application/json",
        "Content-Type": "application/json; charset=utf-8",
    }
    with requests.Session() as session:
        started = time.perf_counter()
        for order_uuid, payload in jobs:
            response = session.post(
                f"{url}/timp/orders/tracking/{order_uuid}/",
                data=json.dumps(payload),
                headers=headers,
                timeout=30,
            )
            if response.status_code != 201 or not response.json().get("package_uuid"):
                raise BenchError(f"bare loop: {response.status_code} {response.text[:300]}")
        return time.perf_counter() - started


# --------------------------------------------------------------------------- database


def odoo_config(db, addons_path):
    config.parse_config(
        [
            "--database",
            db,
            "--addons-path",
            addons_path,
            "--db_host",
            DB_HOST,
            "--log-level",
            "warn",
            "--max-cron-threads",
            "0",
            "--without-demo",
            "all",
        ],
        setup_logging=True,
    )


def addons_path_default():
    link = ROOT / ".build" / "addons" / MODULE
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(ROOT)
    out = subprocess.run(  # noqa: S603 - our own tool, fixed arguments
        [sys.executable, str(ROOT / "tools" / "odoo_addons_path.py"), str(link.parent)],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def module_installed(db):
    try:
        conn = psycopg2.connect(dbname=db, host=DB_HOST)
    except psycopg2.OperationalError:
        return False
    try:
        with conn.cursor() as cr:
            cr.execute("SELECT state FROM ir_module_module WHERE name = %s", [MODULE])
            row = cr.fetchone()
        return bool(row and row[0] == "installed")
    except psycopg2.Error:
        return False
    finally:
        conn.close()


def drop_db(db):
    conn = psycopg2.connect(dbname="postgres", host=DB_HOST)
    conn.autocommit = True
    try:
        with conn.cursor() as cr:
            cr.execute(
                psycopg2.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    psycopg2.sql.Identifier(db)
                )
            )
    finally:
        conn.close()
    shutil.rmtree(config.filestore(db), ignore_errors=True)


def install_db(db, addons_path):
    drop_db(db)
    started = time.perf_counter()
    subprocess.run(  # noqa: S603 - our own tool, fixed arguments
        [
            sys.executable,
            str(ROOT / "tools" / "install_db.py"),
            "--db",
            db,
            "--addons-path",
            addons_path,
            "--modules",
            MODULE,
        ],
        check=True,
    )
    return time.perf_counter() - started


# --------------------------------------------------------------------------- benchmark


class Bench:
    def __init__(self, registry, sandbox, opts):
        self.registry = registry
        self.sandbox = sandbox
        self.opts = opts
        self.tag = secrets.token_hex(3).upper()  # keeps tracking numbers unique per run
        self.rows = []
        self.failures = []
        self.warm_ids = []
        self.warm = False

    # ---------------------------------------------------------------- data

    def setup(self):
        """Company pointed at the sandbox, products in stock, a carrier, a customer."""
        count = max(self.opts.a_lines, self.opts.lines, *self.opts.c_sizes)
        with odoo_env(self.registry) as env:
            company = env.company
            company.write(
                {
                    "crux_environment": "custom",
                    "crux_api_url": self.sandbox.url,
                    "crux_api_token": self.sandbox.token,
                    "crux_auto_send": False,
                    "crux_concurrency": 1,
                    "crux_timeout": 30,
                    "crux_retry_limit": 5,
                }
            )
            company.partner_id.tz = "America/New_York"
            warehouse = env["stock.warehouse"].search([("company_id", "=", company.id)], limit=1)
            products = env["product.product"].create(
                [
                    {
                        "name": f"Bench product {index}",
                        "default_code": f"BENCH-{self.tag}-{index:03d}",
                        "is_storable": True,
                        "weight": 0.5,
                        "list_price": 10.0,
                    }
                    for index in range(count)
                ]
            )
            for product in products:
                env["stock.quant"]._update_available_quantity(
                    product, warehouse.lot_stock_id, 1_000_000
                )
            carrier_product = env["product.product"].create(
                {"name": "Bench shipping", "type": "service"}
            )
            carrier = env["delivery.carrier"].create(
                {
                    "name": "UPS",
                    "delivery_type": "fixed",
                    "fixed_price": 12.5,
                    "product_id": carrier_product.id,
                    "crux_method": "Ground",
                }
            )
            customer = env["res.partner"].create({"name": "Bench Crux customer"})
            self.company_id = company.id
            self.product_ids = products.ids
            self.carrier_id = carrier.id
            self.customer_id = customer.id
            self.admin_id = env.ref("base.user_admin").id

    def make_delivery(self, env, n_lines, n_packs, quantity=2):
        """A confirmed sale order linked to a new sandbox order; its delivery ready to validate.

        Line i is packed in package i % n_packs, each package with its own tracking number.
        """
        products = env["product.product"].browse(self.product_ids[:n_lines])
        carrier = env["delivery.carrier"].browse(self.carrier_id)
        crux_order = self.sandbox.add_order(
            lines=[
                {
                    "sku_id": p.default_code,
                    "quantity": UNLIMITED,
                    "retailer_provided_sku_cost": 9.99,
                }
                for p in products
            ]
        )
        order = env["sale.order"].create(
            {
                "partner_id": self.customer_id,
                "order_line": [
                    Command.create(
                        {"product_id": p.id, "product_uom_qty": quantity, "price_unit": 7.25}
                    )
                    for p in products
                ],
            }
        )
        order.set_delivery_line(carrier, carrier.fixed_price)
        order.action_confirm()
        order.crux_order_uuid = crux_order["order_uuid"]
        product_lines = order.order_line.filtered(lambda line: not line.is_delivery)
        for line, item in zip(product_lines, crux_order["line_items"], strict=True):
            line.crux_line_item_uuid = item["line_item_uuid"]
        picking = order.picking_ids
        picking.ensure_one()
        picking.action_assign()
        picking.move_line_ids.unlink()
        packs = env["stock.quant.package"].create(
            [
                {
                    "name": f"{picking.name}-P{index + 1}",
                    "crux_tracking_number": f"TRK-{self.tag}-{picking.id}-{index + 1}",
                }
                for index in range(n_packs)
            ]
        )
        env["stock.move.line"].create(
            [
                {
                    "move_id": move.id,
                    "picking_id": picking.id,
                    "product_id": move.product_id.id,
                    "product_uom_id": move.product_uom.id,
                    "quantity": quantity,
                    "location_id": move.location_id.id,
                    "location_dest_id": move.location_dest_id.id,
                    "result_package_id": packs[index % n_packs].id,
                }
                for index, move in enumerate(picking.move_ids)
            ]
        )
        picking.move_ids.picked = True
        picking.carrier_price = carrier.fixed_price
        picking.carrier_tracking_ref = f"1Z-{self.tag}-{picking.id}"
        return picking

    @staticmethod
    def validate(picking):
        result = picking.button_validate()
        if result is not True or picking.state != "done":
            raise BenchError(f"{picking.name}: validation did not complete ({result!r})")

    def build_set(self, label, n_lines, count, per_picking):
        """``count`` packages of ``n_lines`` lines waiting to be sent; return their ids.

        One real delivery is validated and its package prepared by the add-on
        (``_crux_prepare_packages``); its payload and lines are the model of
        every package of the set. The packages are created in bulk with the
        ORM, ``per_picking`` per transfer (transfers created in bulk too), each
        transfer with its own sandbox order (so that no sandbox line collects
        thousands of tracking entries), each package with its own tracking number.
        """
        with odoo_env(self.registry) as env:
            env.company.crux_auto_send = False
            template_id = self.make_delivery(env, n_lines, 1).id
        with odoo_env(self.registry) as env:
            template = env["stock.picking"].browse(template_id)
            self.validate(template)
        with odoo_env(self.registry) as env:
            template = env["stock.picking"].browse(template_id)
            (prepared,) = template._crux_prepare_packages()
            if prepared["error"] or not prepared["payload"]:
                raise BenchError(f"{template.name}: not ready for Crux: {prepared['error']}")
            template_uuids = [item["line_item_uuid"] for item in prepared["payload"]["line_items"]]
            n_pickings = math.ceil(count / per_picking)
            pickings = env["stock.picking"].create(
                [
                    {
                        "picking_type_id": template.picking_type_id.id,
                        "partner_id": template.partner_id.id,
                        "location_id": template.location_id.id,
                        "location_dest_id": template.location_dest_id.id,
                        "origin": template.origin,
                        "group_id": template.group_id.id,
                        "carrier_id": template.carrier_id.id,
                    }
                    for _index in range(n_pickings)
                ]
            )
            quant_packages = env["stock.quant.package"].create(
                [{"name": f"{label}-{self.tag}-{index:05d}"} for index in range(count)]
            )
            vals_list = []
            for index, quant_package in enumerate(quant_packages):
                picking = pickings[index // per_picking]
                if index % per_picking == 0:
                    crux_order = self.sandbox.add_order(
                        lines=[
                            {"sku_id": f"{label}-{line}", "quantity": UNLIMITED}
                            for line in range(n_lines)
                        ]
                    )
                    new_uuids = [item["line_item_uuid"] for item in crux_order["line_items"]]
                    uuids = dict(zip(template_uuids, new_uuids, strict=True))
                tracking = quant_package.name
                payload = copy.deepcopy(prepared["payload"])
                payload["tracking_number"] = tracking
                for item in payload["line_items"]:
                    item["line_item_uuid"] = uuids[item["line_item_uuid"]]
                for attribute in payload["package_attributes"]:
                    if attribute["attribute_name"] == "odoo_transfer":
                        attribute["attribute_value"] = picking.name
                    elif attribute["attribute_name"] == "odoo_package":
                        attribute["attribute_value"] = quant_package.name
                lines = [
                    dict(line, line_item_uuid=uuids[line["line_item_uuid"]])
                    for line in prepared["lines"]
                ]
                vals_list.append(
                    {
                        "name": quant_package.name,
                        "picking_id": picking.id,
                        "sale_order_id": template.sale_id.id,
                        "order_uuid": crux_order["order_uuid"],
                        "quant_package_id": quant_package.id,
                        "tracking_number": tracking,
                        "payload": payload,
                        "state": "to_send",
                        "line_ids": [Command.create(line) for line in lines],
                    }
                )
            return env["crux.package"].create(vals_list).ids

    # ---------------------------------------------------------------- drains

    def queue_only(self, ids, concurrency):
        """Make exactly these packages due (again); park every other due package."""
        with odoo_env(self.registry) as env:
            cr = env.cr
            cr.execute(
                "UPDATE crux_package SET state = 'waiting' "
                "WHERE state IN ('to_send', 'sending') AND NOT (id = ANY(%s))",
                [ids],
            )
            cr.execute(
                """UPDATE crux_package
                      SET state = 'to_send', package_uuid = NULL, sent_date = NULL,
                          attempt_count = 0, next_attempt = NULL, sending_since = NULL,
                          needs_check = FALSE, recovered = FALSE, last_error = NULL,
                          error_kind = NULL
                    WHERE id = ANY(%s)""",
                [ids],
            )
            cr.execute(
                """UPDATE stock_picking SET crux_state = 'to_send', crux_package_uuid = NULL
                    WHERE id IN (SELECT picking_id FROM crux_package WHERE id = ANY(%s))""",
                [ids],
            )
            env["res.company"].browse(self.company_id).write(
                {"crux_concurrency": concurrency, "crux_auth_error": False}
            )
        self.vacuum()

    def vacuum(self):
        """VACUUM ANALYZE the tables each drain churns.

        Every drain updates its packages and transfers several times; without
        a vacuum the dead rows pile up from one drain to the next and each
        claim scans more of them (autovacuum is off on some clusters, and too
        slow to keep up with a benchmark on the others), so later runs would
        measure the bloat instead of the engine.
        """
        conn = psycopg2.connect(dbname=self.opts.db, host=DB_HOST)
        try:
            conn.autocommit = True
            with conn.cursor() as cr:
                cr.execute(
                    "VACUUM (ANALYZE) crux_package, crux_package_line, stock_picking, "
                    "crux_request_log, mail_message"
                )
        finally:
            conn.close()

    def jobs(self, ids):
        with odoo_env(self.registry) as env:
            env.cr.execute(
                "SELECT order_uuid, payload FROM crux_package WHERE id = ANY(%s) ORDER BY id",
                [ids],
            )
            return env.cr.fetchall()

    def expected_tracking(self, ids):
        with odoo_env(self.registry) as env:
            env.cr.execute("SELECT tracking_number FROM crux_package WHERE id = ANY(%s)", [ids])
            return Counter(row[0] for row in env.cr.fetchall())

    def check_posted(self, ids, before, what):
        """Every package of ``ids`` reached the sandbox exactly once; return the duplicates."""
        posted = Counter(p["tracking_number"] for p in self.sandbox.packages()[before:])
        expected = self.expected_tracking(ids)
        duplicates = sum(n - 1 for n in posted.values() if n > 1)
        missing = expected - posted
        extra = posted - expected
        if duplicates or missing or extra:
            raise BenchError(
                f"{what}: {duplicates} duplicate post(s), {sum(missing.values())} missing, "
                f"{sum(extra.values())} unexpected"
            )
        return duplicates

    def verify_sent(self, ids, before, what, stats=None):
        """All these packages are sent, each posted exactly once since ``before``."""
        with odoo_env(self.registry) as env:
            env.cr.execute(
                "SELECT state, COUNT(*) FROM crux_package WHERE id = ANY(%s) GROUP BY state",
                [ids],
            )
            states = dict(env.cr.fetchall())
        if states != {"sent": len(ids)} or (stats is not None and stats.get("sent") != len(ids)):
            raise BenchError(f"{what} of {len(ids)} packages: states {states}, stats {stats}")
        return self.check_posted(ids, before, what)

    def warm_up(self):
        """Drain the warm-up set once: the first drain of a process fills the caches."""
        if not self.warm:
            self.drain(self.warm_ids, concurrency=1)
            self.warm = True

    def drain(self, ids, concurrency, delay=0.0, profiler=None):
        """Time the add-on's engine sending these packages (``_crux_send_due``, cron path)."""
        self.queue_only(ids, concurrency)
        self.sandbox.delay = delay
        before = len(self.sandbox.packages())
        gc.collect()
        try:
            with odoo_env(self.registry) as env:
                queries0 = sql_db.sql_counter
                started = time.perf_counter()
                with profiler or contextlib.nullcontext():
                    stats = env["crux.package"]._crux_send_due()
                seconds = time.perf_counter() - started
                queries = sql_db.sql_counter - queries0
        finally:
            self.sandbox.delay = 0.0
        run = Run(seconds, len(ids), queries=queries, stats=dict(stats))
        run.duplicates = self.verify_sent(ids, before, "add-on drain", dict(stats))
        return run

    def bare_loop(self, ids, jobs):
        """The same payloads posted one after the other with a bare requests.Session."""
        before = len(self.sandbox.packages())
        gc.collect()
        seconds = post_loop(self.sandbox.url, self.sandbox.token, jobs)
        run = Run(seconds, len(jobs))
        run.duplicates = self.check_posted(ids, before, "bare loop")
        return run

    def in_child(self, spec):
        """Run one measurement in a fresh process (see child_main); return its result dict."""
        spec = dict(spec, url=self.sandbox.url, token=self.sandbox.token, trace=self.opts.trace)
        with tempfile.TemporaryDirectory(prefix="crux-bench-") as tmp:
            path = Path(tmp) / "spec.json"
            path.write_text(json.dumps(spec))
            proc = subprocess.run(  # noqa: S603 - this very script, fixed arguments
                [sys.executable, str(Path(__file__).resolve()), "--child", str(path)],
                capture_output=True,
                text=True,
                check=False,
            )
        if proc.returncode:
            raise BenchError(f"child {spec['mode']} failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def child_drain(self, ids):
        """The drain of (b) in a fresh process: its memory, without the sandbox's."""
        self.queue_only(self.warm_ids + ids, concurrency=1)
        before = len(self.sandbox.packages())
        result = self.in_child(
            {
                "mode": "drain",
                "db": self.opts.db,
                "addons_path": self.opts.addons_path,
                "warm_ids": self.warm_ids,
            }
        )
        run = Run(result["seconds"], len(ids), peak=result["peak"], rss_delta=result["rss"])
        run.duplicates = self.verify_sent(self.warm_ids + ids, before, "add-on drain (child)")
        return run

    def child_bare(self, ids, jobs):
        """The bare loop of (b) in a fresh process."""
        before = len(self.sandbox.packages())
        result = self.in_child(
            {"mode": "bare", "jobs": jobs, "warm_jobs": self.jobs(self.warm_ids)}
        )
        run = Run(result["seconds"], len(jobs), peak=result["peak"], rss_delta=result["rss"])
        run.duplicates = self.check_posted(self.warm_ids + ids, before, "bare loop (child)")
        return run

    # ---------------------------------------------------------------- figures

    def figure_a(self):
        opts = self.opts
        print(
            f"\n(a) validating a {opts.a_lines}-line delivery in {opts.a_packs} packages, "
            f"sandbox answering after {opts.a_delay:g} s: auto-send ON vs OFF",
            flush=True,
        )
        self.sandbox.delay = opts.a_delay
        requests_before = len(self.sandbox.requests)
        runs = {False: [], True: []}  # (wall s, CPU s of this process, SQL queries)
        queued = {False: set(), True: set()}
        # OFF, ON, then ON, OFF, OFF, ON, ... so that a drift favours neither side;
        # the first two validations warm the caches up and are not counted.
        order = [False, True] + [
            auto for index in range(opts.a_repeats) for auto in ((index % 2 == 1), (index % 2 == 0))
        ]
        try:
            for index, auto in enumerate(order):
                with odoo_env(self.registry) as env:
                    env.company.crux_auto_send = auto
                    picking_id = self.make_delivery(env, opts.a_lines, opts.a_packs).id
                gc.collect()
                with odoo_env(self.registry, uid=self.admin_id) as env:
                    picking = env["stock.picking"].browse(picking_id)
                    queries0 = sql_db.sql_counter
                    cpu0 = time.process_time()
                    started = time.perf_counter()
                    self.validate(picking)
                    env.cr.commit()
                    seconds = time.perf_counter() - started
                    cpu = time.process_time() - cpu0
                    queries = sql_db.sql_counter - queries0
                    states = picking.crux_package_ids.mapped("state")
                if index >= 2:
                    runs[auto].append((seconds, cpu, queries))
                    queued[auto].add(states.count("to_send"))
        finally:
            self.sandbox.delay = 0.0
            with odoo_env(self.registry) as env:
                env.company.crux_auto_send = False
        calls = len(self.sandbox.requests) - requests_before
        for auto, name in ((False, "OFF"), (True, "ON ")):
            wall, cpu, queries = zip(*runs[auto], strict=True)
            print(
                f"    {name}: {fmt_runs(wall, 's')} (CPU {median(cpu):.3f} s, "
                f"{median(queries):.0f} queries); packages queued {sorted(queued[auto])}"
            )
        print(f"    requests to Crux during the validations: {calls}")
        if queued[True] != {opts.a_packs} or queued[False] != {0}:
            raise BenchError(f"(a) unexpected queued packages: {queued}")
        if calls:
            raise BenchError(f"(a) the validations called Crux {calls} time(s)")
        off, on = (median([run[0] for run in runs[auto]]) for auto in (False, True))
        ratio = on / off
        self.add(
            f"(a) validate {opts.a_lines} lines/{opts.a_packs} pkgs, Crux +{opts.a_delay:g} s",
            f"OFF {off:.3f} s",
            f"ON {on:.3f} s",
            ratio,
            "<= 1.05x",
            ratio <= 1.05,
        )

    def figure_c(self, sets):
        opts = self.opts
        print(
            f"\n(c) SQL queries per sent package ({opts.c_packages} packages per size, "
            "concurrency 1, every cursor counted)",
            flush=True,
        )
        self.warm_up()
        per_package = {}
        for size in opts.c_sizes:
            runs = [self.drain(sets[size], concurrency=1) for _ in range(opts.repeats)]
            values = [run.queries_per_package for run in runs]
            per_package[size] = median(values)
            rates = [run.rate for run in runs]
            print(
                f"    {size:>3} line(s): {fmt_runs(values, 'queries/package', 2)}"
                f" ({fmt_runs(rates, 'pkg/s', 1)})"
            )
        base_size = opts.c_sizes[0]
        base = per_package[base_size]
        for size in opts.c_sizes[1:]:
            value = per_package[size]
            self.add(
                f"(c) SQL queries/sent package, {size} vs {base_size} line(s)",
                f"{base_size} line(s) {base:.2f} q",
                f"{size} lines {value:.2f} q",
                value / base,
                f"<= +{opts.c_slack:g} q",
                value - base <= opts.c_slack,
            )

    def figure_b(self, ids):
        opts = self.opts
        n = len(ids)
        print(
            f"\n(b) draining {n} packages ({opts.lines} lines each) against the sandbox, "
            "concurrency 1, vs a bare requests.Session loop (sequential)",
            flush=True,
        )
        self.warm_up()
        jobs = self.jobs(ids)
        post_loop(self.sandbox.url, self.sandbox.token, self.jobs(self.warm_ids))  # warm-up
        bare, addon = [], []
        for _ in range(opts.repeats):
            bare.append(self.bare_loop(ids, jobs))
            addon.append(self.drain(ids, concurrency=1))
        print(f"    bare  : {fmt_runs([r.rate for r in bare], 'pkg/s', 1)}")
        print(f"    add-on: {fmt_runs([r.rate for r in addon], 'pkg/s', 1)}")
        print(f"    add-on: {median([r.queries_per_package for r in addon]):.2f} queries/package")
        base, value = median([r.rate for r in bare]), median([r.rate for r in addon])
        self.add(
            f"(b) drain {n} pkgs, concurrency 1 (pkg/s)",
            f"bare {base:.1f}/s",
            f"{value:.1f}/s",
            value / base,
            ">= 0.5x",
            value / base >= 0.5,
        )

    def figure_e(self, ids):
        opts = self.opts
        n = len(ids)
        what = "RSS growth" + (" and tracemalloc peak" if opts.trace else "")
        print(
            f"\n(e) peak memory of the drain in (b) vs the bare loop: {what} of each, run in a "
            "fresh process of its own after a warm-up (the sandbox in its own)",
            flush=True,
        )
        jobs = self.jobs(ids)
        bare, addon = [], []
        for _ in range(opts.e_repeats):
            bare.append(self.child_bare(ids, jobs))
            addon.append(self.child_drain(ids))
        mib = 1024 * 1024
        for name, runs in (("bare  ", bare), ("add-on", addon)):
            rss = fmt_runs([r.rss_delta / mib for r in runs], "MiB", 2)
            traced = f"; tracemalloc peak {fmt_runs([r.peak / mib for r in runs], 'MiB', 2)}"
            print(
                f"    {name}: peak RSS growth {rss}{traced if opts.trace else ''}"
                f" ({fmt_runs([r.rate for r in runs], 'pkg/s', 1)})"
            )
        metrics = [("rss_delta", "peak RSS growth")]
        if opts.trace:
            metrics.append(("peak", "tracemalloc peak"))
        for attribute, label in metrics:
            base = median([getattr(r, attribute) for r in bare])
            value = median([getattr(r, attribute) for r in addon])
            self.add(
                f"(e) {label}, drain of {n} (own process)",
                f"bare {base / mib:.2f} MiB",
                f"{value / mib:.2f} MiB",
                value / base if base > 0 else None,
                "none (info)",
                None,
            )

    def figure_d(self, ids):
        opts = self.opts
        n = len(ids)
        print(
            f"\n(d) draining {n} packages, sandbox answering after {opts.d_delay * 1000:g} ms: "
            f"crux_concurrency {opts.concurrency} vs 1",
            flush=True,
        )
        self.warm_up()
        sequential, parallel = [], []
        for _ in range(opts.d_repeats):
            sequential.append(self.drain(ids, concurrency=1, delay=opts.d_delay))
            parallel.append(self.drain(ids, concurrency=opts.concurrency, delay=opts.d_delay))
        print(f"    concurrency 1 : {fmt_runs([r.rate for r in sequential], 'pkg/s', 1)}")
        print(
            f"    concurrency {opts.concurrency:<2}: "
            f"{fmt_runs([r.rate for r in parallel], 'pkg/s', 1)}"
        )
        duplicates = sum(r.duplicates for r in sequential + parallel)
        print(
            f"    sandbox record: {n} tracking numbers posted exactly once in each of the "
            f"{len(sequential) + len(parallel)} drains ({duplicates} duplicate posts)"
        )
        base, value = median([r.rate for r in sequential]), median([r.rate for r in parallel])
        self.add(
            f"(d) drain {n} pkgs, Crux +{opts.d_delay * 1000:g} ms, "
            f"concurrency {opts.concurrency} vs 1",
            f"seq {base:.1f}/s",
            f"{value:.1f}/s",
            value / base,
            ">= 5x",
            value / base >= 5,
        )
        self.add(
            "(d) packages posted twice (sandbox record)",
            "0",
            f"{duplicates} of {n}",
            None,
            "= 0",
            duplicates == 0,
        )

    def profile(self, ids):
        """cProfile of one drain as in (b) and one as in (d): where the engine's time goes."""
        opts = self.opts
        for title, concurrency, delay, top in (
            ("(b)", 1, 0.0, opts.profile_top),
            ("(d)", opts.concurrency, opts.d_delay, 0),
        ):
            profiler = cProfile.Profile()
            run = self.drain(ids, concurrency=concurrency, delay=delay, profiler=profiler)
            stats = pstats.Stats(profiler)
            print(
                f"\nprofile {title}: drain of {run.count} packages, concurrency {concurrency}, "
                f"sandbox delay {delay * 1000:g} ms: {run.rate:.1f} pkg/s under cProfile, "
                f"{run.queries_per_package:.2f} queries/package; cumulative time per step "
                "(main thread; steps nest):"
            )
            total = sum(
                entry[3] for key, entry in stats.stats.items() if key[2] == "_crux_send_due"
            )
            for label, seconds, calls in engine_breakdown(stats):
                share = 100 * seconds / total if total else 0
                print(f"    {label:<44} {seconds:8.2f} s {share:5.1f} %  {calls:>6} calls")
            if top:
                for sort in ("cumulative", "tottime"):
                    out = io.StringIO()
                    pstats.Stats(profiler, stream=out).sort_stats(sort).print_stats(top)
                    text = out.getvalue()
                    print(f"--- top {top} by {sort}")
                    print(text[text.find("   ncalls") :].rstrip())

    # ---------------------------------------------------------------- report

    def add(self, figure, baseline, addon, ratio, goal, met):
        verdict = "info" if met is None else ("met" if met else "MISSED")
        if met is False:
            self.failures.append(figure)
        self.rows.append(Row(figure, baseline, addon, ratio, goal, verdict))

    def table(self):
        header = Row("figure", "baseline", "add-on", None, "goal", "verdict")
        cells = [
            [r.figure, r.baseline, r.addon, _ratio(r), r.goal, r.verdict]
            for r in [header, *self.rows]
        ]
        cells[0][3] = "ratio"
        widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
        lines = []
        for index, row in enumerate(cells):
            padded = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            lines.append(" | ".join(padded).rstrip())
            if index == 0:
                lines.append("-+-".join("-" * width for width in widths))
        return "\n".join(lines)


#: (label, file name part or None, function name) of the steps the profile summary shows.
ENGINE_STEPS = (
    ("whole drain (_crux_send_due)", "crux_tracking", "_crux_send_due"),
    ("claim batches (_crux_claim)", "crux_tracking", "_crux_claim"),
    ("plain-data jobs (_crux_jobs)", "crux_tracking", "_crux_jobs"),
    ("HTTP to Crux (_exchange_all)", "crux_tracking", "_exchange_all"),
    (
        "record with retries (_crux_record_with_retries)",
        "crux_tracking",
        "_crux_record_with_retries",
    ),
    ("  request log, own cursor (_crux_store)", "crux_tracking", "_crux_store"),
    ("  record outcome (_crux_record)", "crux_tracking", "_crux_record"),
    ("    chatter (_crux_notify_sent)", "crux_tracking", "_crux_notify_sent"),
    ("      message_post", "mail_thread.py", "message_post"),
    ("all commits (Cursor.commit: flush + COMMIT)", "sql_db.py", "commit"),
    (
        "all SQL (psycopg2 execute)",
        None,
        "<method 'execute' of 'psycopg2.extensions.cursor' objects>",
    ),
)


def engine_breakdown(stats):
    """(label, cumulative seconds, calls) of ENGINE_STEPS found in a pstats.Stats."""
    rows = []
    for label, file_part, name in ENGINE_STEPS:
        found = [
            entry
            for (filename, _line, function), entry in stats.stats.items()
            if function == name and (file_part is None or file_part in filename)
        ]
        if found:
            # The outermost entry of a function that calls itself or is wrapped has the
            # largest cumulative time; do not add nested ones up.
            entry = max(found, key=lambda entry: entry[3])
            rows.append((label, entry[3], entry[1]))
    return rows


def timed(function, *args):
    started = time.perf_counter()
    function(*args)
    print(f"    ({time.perf_counter() - started:.0f} s)", flush=True)


def _ratio(row):
    return "-" if row.ratio is None else f"{row.ratio:.2f}x"


# --------------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="crux_tracking_bench", help="throw-away database")
    parser.add_argument("--addons-path", help="default: Odoo's add-ons and .build/addons")
    parser.add_argument("--reuse-db", action="store_true", help="skip the install if installed")
    parser.add_argument("--drop-db", action="store_true", help="drop the database at the end")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--packages", type=int, help="packages drained in (b), (d), (e)")
    parser.add_argument("--lines", type=int, help="lines per package in (b), (d), (e)")
    parser.add_argument("--per-picking", type=int, help="packages per transfer in the sets")
    parser.add_argument("--repeats", type=int, help="runs per side in (b) and (c)")
    parser.add_argument("--a-repeats", type=int, help="validations per side in (a)")
    parser.add_argument("--a-lines", type=int, default=20)
    parser.add_argument("--a-packs", type=int, default=3)
    parser.add_argument("--a-delay", type=float, default=2.0, help="sandbox delay in (a), s")
    parser.add_argument("--c-sizes", default="1,10,50", help="lines per package in (c)")
    parser.add_argument("--c-packages", type=int, help="packages per size in (c)")
    parser.add_argument("--c-slack", type=float, default=2.0, help="goal of (c), queries")
    parser.add_argument("--d-delay", type=float, default=0.05, help="sandbox delay in (d), s")
    parser.add_argument("--d-repeats", type=int, help="runs per side in (d)")
    parser.add_argument("--e-repeats", type=int, help="runs per side in (e)")
    parser.add_argument("--concurrency", type=int, default=16, help="crux_concurrency in (d)")
    parser.add_argument("--only", default="a,b,c,d,e", help="figures to measure, e.g. --only b,e")
    parser.add_argument(
        "--trace", action="store_true", help="(e): tracemalloc peak too (slows that drain)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help="cProfile one drain as in (b)")
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when a goal is missed"
    )
    opts = parser.parse_args(argv)
    for name, value in (QUICK if opts.quick else FULL).items():
        if getattr(opts, name) is None:
            setattr(opts, name, value)
    opts.c_sizes = [int(size) for size in opts.c_sizes.split(",")]
    opts.only = set(opts.only.replace(" ", "").split(","))
    return opts


def child_main(spec_path):
    """One memory measurement of (e), alone in this process; prints a JSON line."""
    spec = json.loads(Path(spec_path).read_text())
    if spec["mode"] == "bare":
        jobs = [tuple(job) for job in spec["jobs"]]
        post_loop(spec["url"], spec["token"], spec["warm_jobs"])
        with MemoryProbe(trace=spec["trace"]) as probe:
            seconds = post_loop(spec["url"], spec["token"], jobs)
    else:
        odoo_config(spec["db"], spec["addons_path"])
        registry = Registry(spec["db"])
        with odoo_env(registry) as env:
            env["crux.package"]._crux_send_due(package_ids=spec["warm_ids"])
        with odoo_env(registry) as env, MemoryProbe(trace=spec["trace"]) as probe:
            started = time.perf_counter()
            env["crux.package"]._crux_send_due()
            seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rss": probe.rss_delta, "peak": probe.peak}))
    return 0


def main(argv=None):
    opts = parse_args(argv)
    if opts.child:
        return child_main(opts.child)
    started = time.perf_counter()
    opts.addons_path = opts.addons_path or addons_path_default()
    odoo_config(opts.db, opts.addons_path)
    if opts.reuse_db and module_installed(opts.db):
        print(f"bench: reusing database {opts.db}", flush=True)
    else:
        seconds = install_db(opts.db, opts.addons_path)
        print(f"bench: database {opts.db} installed in {seconds:.0f} s", flush=True)

    registry = Registry(opts.db)
    sandbox = RemoteSandbox(token=secrets.token_urlsafe(16))
    bench = Bench(registry, sandbox, opts)
    status = 0
    try:
        print(
            f"bench: Odoo {odoo.release.version}, Python {platform.python_version()}, "
            f"{os.cpu_count()} CPU(s), sandbox (own process) at {sandbox.url}, "
            f"{'quick' if opts.quick else 'full'} sizes",
            flush=True,
        )
        bench.setup()
        if "a" in opts.only:
            timed(bench.figure_a)
        sets_started = time.perf_counter()
        bench.warm_ids = bench.build_set("W", opts.lines, BATCH, opts.per_picking)
        c_sets = {}
        if "c" in opts.only:
            for size in opts.c_sizes:
                c_sets[size] = bench.build_set(f"C{size}", size, opts.c_packages, opts.per_picking)
        b_set = []
        if opts.only & {"b", "d", "e"} or opts.profile:
            b_set = bench.build_set("B", opts.lines, opts.packages, opts.per_picking)
        count = len(bench.warm_ids) + len(b_set) + sum(map(len, c_sets.values()))
        print(
            f"\nbench: {count} packages created in {time.perf_counter() - sets_started:.0f} s",
            flush=True,
        )
        if c_sets:
            timed(bench.figure_c, c_sets)
        if "b" in opts.only:
            timed(bench.figure_b, b_set)
        if "e" in opts.only:
            timed(bench.figure_e, b_set)
        if "d" in opts.only:
            timed(bench.figure_d, b_set)
        if opts.profile:
            bench.warm_up()
            timed(bench.profile, b_set)
    except BenchError as exc:
        print(f"\nbench: FAILED: {exc}", flush=True)
        status = 2
    finally:
        sandbox.stop()
    if bench.rows:
        print(f"\n{bench.table()}")
    if bench.failures:
        print(f"\nbench: goal(s) MISSED: {'; '.join(bench.failures)}")
        if opts.strict and not status:
            status = 1
    print(f"bench: done in {time.perf_counter() - started:.0f} s")
    if opts.drop_db:
        Registry.delete(opts.db)
        sql_db.close_db(opts.db)
        drop_db(opts.db)
    return status


if __name__ == "__main__":
    sys.exit(main())
