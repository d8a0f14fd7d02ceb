"""Benchmark of crux_tracking against the local Crux sandbox (issue 6).

Every figure is the add-on measured against a baseline taken in the same run:
the median of several runs of each, printed as a ratio with the absolute
numbers beside it. Nothing here is a test: a missed goal is reported as
"MISSED", it does not fail the run (unless ``--strict``). A broken result
(a package not sent, or sent twice) always fails it.

It works on a throw-away database of its own (created with tools/install_db.py,
with real cursors and commits) and an in-process CruxSandbox on a free
loopback port: no traffic leaves 127.0.0.1. See bench/README.md.

    make bench                        # full run (about 6 to 8 minutes on 2 cores)
    make bench BENCH_ARGS=--quick     # smoke run (about 3 minutes, install included)
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
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg2
import requests

import odoo
from odoo import SUPERUSER_ID, api, sql_db
from odoo.fields import Command
from odoo.modules.registry import Registry
from odoo.tools import config

ROOT = Path(__file__).resolve().parent.parent
MODULE = "crux_tracking"
DB_HOST = "127.0.0.1"
#: Quantity of every sandbox order line: posting the same payloads again never runs out.
UNLIMITED = 10**9

FULL = {
    "packages": 1000,
    "per_picking": 10,
    "lines": 5,
    "repeats": 3,
    "a_repeats": 5,
    "c_packages": 100,
    "d_repeats": 2,
    "e_repeats": 1,
}
QUICK = {
    "packages": 150,
    "per_picking": 10,
    "lines": 5,
    "repeats": 2,
    "a_repeats": 2,
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
    """Peak of Python allocations (tracemalloc) and of the RSS growth (sampled) in a block."""

    interval = 0.005

    def __init__(self):
        self.process = psutil.Process()
        self.peak = 0
        self.rss_delta = 0
        self._rss0 = 0
        self._rss_peak = 0
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
        tracemalloc.start()
        self._traced0 = tracemalloc.get_traced_memory()[0]
        return self

    def __exit__(self, *exc_info):
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        self._stop.set()
        self._thread.join()
        self._rss_peak = max(self._rss_peak, self.process.memory_info().rss)
        self.peak = peak - self._traced0
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


# --------------------------------------------------------------------------- database


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
            cr.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
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

    def drain(self, ids, concurrency, delay=0.0, profiler=None, memory=False):
        """Time the add-on's engine sending these packages (``_crux_send_due``, cron path)."""
        self.queue_only(ids, concurrency)
        self.sandbox.delay = delay
        before = len(self.sandbox.packages())
        probe = MemoryProbe() if memory else contextlib.nullcontext()
        gc.collect()
        try:
            with odoo_env(self.registry) as env:
                queries0 = sql_db.sql_counter
                started = time.perf_counter()
                with probe, profiler or contextlib.nullcontext():
                    stats = env["crux.package"]._crux_send_due()
                seconds = time.perf_counter() - started
                queries = sql_db.sql_counter - queries0
        finally:
            self.sandbox.delay = 0.0
        with odoo_env(self.registry) as env:
            env.cr.execute(
                "SELECT state, COUNT(*) FROM crux_package WHERE id = ANY(%s) GROUP BY state",
                [ids],
            )
            states = dict(env.cr.fetchall())
        if states != {"sent": len(ids)} or stats.get("sent") != len(ids):
            raise BenchError(f"drain of {len(ids)} packages: states {states}, stats {dict(stats)}")
        run = Run(seconds, len(ids), queries=queries, stats=dict(stats))
        run.duplicates = self.check_posted(ids, before, "add-on drain")
        if memory:
            run.peak, run.rss_delta = probe.peak, probe.rss_delta
        return run

    def bare_loop(self, ids, jobs, memory=False):
        """The same payloads posted one after the other with a bare requests.Session."""
        before = len(self.sandbox.packages())
        headers = {
            "Authorization": f"Token {self.sandbox.token}",
            "Accept": "application/json",
            "Content-Type": "application/json; charset=utf-8",
        }
        probe = MemoryProbe() if memory else contextlib.nullcontext()
        gc.collect()
        with requests.Session() as session:
            started = time.perf_counter()
            with probe:
                for order_uuid, payload in jobs:
                    response = session.post(
                        f"{self.sandbox.url}/timp/orders/tracking/{order_uuid}/",
                        data=json.dumps(payload),
                        headers=headers,
                        timeout=30,
                    )
                    if response.status_code != 201 or not response.json().get("package_uuid"):
                        raise BenchError(f"bare loop: {response.status_code} {response.text}")
            seconds = time.perf_counter() - started
        run = Run(seconds, len(jobs))
        run.duplicates = self.check_posted(ids, before, "bare loop")
        if memory:
            run.peak, run.rss_delta = probe.peak, probe.rss_delta
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
        times = {False: [], True: []}
        queued = {False: set(), True: set()}
        try:
            # The first pair warms the caches up and is not counted.
            for index, auto in enumerate([False, True] * (opts.a_repeats + 1)):
                with odoo_env(self.registry) as env:
                    env.company.crux_auto_send = auto
                    picking_id = self.make_delivery(env, opts.a_lines, opts.a_packs).id
                gc.collect()
                with odoo_env(self.registry, uid=self.admin_id) as env:
                    picking = env["stock.picking"].browse(picking_id)
                    started = time.perf_counter()
                    self.validate(picking)
                    env.cr.commit()
                    seconds = time.perf_counter() - started
                    states = picking.crux_package_ids.mapped("state")
                if index >= 2:
                    times[auto].append(seconds)
                    queued[auto].add(states.count("to_send"))
        finally:
            self.sandbox.delay = 0.0
            with odoo_env(self.registry) as env:
                env.company.crux_auto_send = False
        calls = len(self.sandbox.requests) - requests_before
        print(f"    OFF: {fmt_runs(times[False], 's')}; packages queued {sorted(queued[False])}")
        print(f"    ON : {fmt_runs(times[True], 's')}; packages queued {sorted(queued[True])}")
        print(f"    requests to Crux during the validations: {calls}")
        if queued[True] != {opts.a_packs} or queued[False] != {0}:
            raise BenchError(f"(a) unexpected queued packages: {queued}")
        if calls:
            raise BenchError(f"(a) the validations called Crux {calls} time(s)")
        off, on = median(times[False]), median(times[True])
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
        # Warm-up: the first drain of the process fills the registry's caches.
        self.drain(sets[opts.c_sizes[0]], concurrency=1)
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
                f"{base:.2f} q",
                f"{value:.2f} q",
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
        jobs = self.jobs(ids)
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
        print(
            "\n(e) peak memory of the drain in (b) vs the bare loop "
            "(tracemalloc peak; RSS growth sampled every 5 ms)",
            flush=True,
        )
        jobs = self.jobs(ids)
        bare, addon = [], []
        for _ in range(opts.e_repeats):
            bare.append(self.bare_loop(ids, jobs, memory=True))
            addon.append(self.drain(ids, concurrency=1, memory=True))
        mib = 1024 * 1024
        for name, runs in (("bare  ", bare), ("add-on", addon)):
            print(
                f"    {name}: tracemalloc peak {fmt_runs([r.peak / mib for r in runs], 'MiB', 2)};"
                f" RSS growth {fmt_runs([r.rss_delta / mib for r in runs], 'MiB', 2)}"
            )
        base, value = median([r.peak for r in bare]), median([r.peak for r in addon])
        self.add(
            f"(e) peak Python memory, drain of {n} (tracemalloc)",
            f"bare {base / mib:.2f} MiB",
            f"{value / mib:.2f} MiB",
            value / base,
            "none (info)",
            None,
        )
        base, value = median([r.rss_delta for r in bare]), median([r.rss_delta for r in addon])
        self.add(
            f"(e) RSS growth, drain of {n}",
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
        """cProfile of one drain as in (b), then the top entries."""
        profiler = cProfile.Profile()
        run = self.drain(ids, concurrency=1, profiler=profiler)
        print(f"\nprofile: drain of {run.count} packages at concurrency 1, {run.rate:.1f} pkg/s")
        for sort in ("cumulative", "tottime"):
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats(sort).print_stats(self.opts.profile_top)
            text = out.getvalue()
            print(f"--- top {self.opts.profile_top} by {sort}")
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


def main(argv=None):
    opts = parse_args(argv)
    started = time.perf_counter()
    addons_path = opts.addons_path or addons_path_default()
    config.parse_config(
        [
            "--database",
            opts.db,
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
    if opts.reuse_db and module_installed(opts.db):
        print(f"bench: reusing database {opts.db}", flush=True)
    else:
        seconds = install_db(opts.db, addons_path)
        print(f"bench: database {opts.db} installed in {seconds:.0f} s", flush=True)

    from odoo.addons.crux_tracking.sandbox.crux_sandbox import CruxSandbox

    registry = Registry(opts.db)
    sandbox = CruxSandbox(token=secrets.token_urlsafe(16)).start()
    bench = Bench(registry, sandbox, opts)
    status = 0
    try:
        print(
            f"bench: Odoo {odoo.release.version}, Python {platform.python_version()}, "
            f"{os.cpu_count()} CPU(s), sandbox at {sandbox.url}, "
            f"{'quick' if opts.quick else 'full'} sizes",
            flush=True,
        )
        bench.setup()
        if "a" in opts.only:
            timed(bench.figure_a)
        sets_started = time.perf_counter()
        c_sets = {}
        if "c" in opts.only:
            for size in opts.c_sizes:
                c_sets[size] = bench.build_set(f"C{size}", size, opts.c_packages, opts.per_picking)
        b_set = []
        if opts.only & {"b", "d", "e"} or opts.profile:
            b_set = bench.build_set("B", opts.lines, opts.packages, opts.per_picking)
        print(
            f"\nbench: {len(b_set) + sum(map(len, c_sets.values()))} packages created in "
            f"{time.perf_counter() - sets_started:.0f} s",
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
