"""Try crux_tracking: a local Crux sandbox, a demo database and Odoo, all on 127.0.0.1.

``make run`` (``python3 tools/demo.py``):

1. starts the Crux sandbox (``sandbox/crux_sandbox.py``, seeded, token ``sandbox-token``);
2. (re)creates the database ``crux_tracking_demo`` with the add-on installed;
3. prepares it through Odoo's Python API: the company points at the sandbox, products
   CRUX-MUG/TEE/CAP/BAG in stock, a "UPS" carrier, a confirmed sale order linked to
   Crux order PO-1001 whose delivery is ready to validate, and a delivery of PO-1002
   already done but not yet sent to Crux;
4. starts Odoo with its scheduled actions and waits until Ctrl-C stops both.

``make run-headless`` (``--headless``) does the same, then validates the PO-1001
delivery over JSON-RPC, waits for the scheduled action to send it, checks that the
package_uuid Odoo stored is the one the sandbox recorded, stops everything and
exits 0 (1 with a message on failure).
"""

import argparse
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / ".build"
ADDONS_DIR = BUILD / "addons"
LOG_DIR = BUILD / "demo"
HOST = "127.0.0.1"
TOKEN = "sandbox-token"  # noqa: S105 - the local sandbox's fixed demo token
MODULE = "crux_tracking"
TRACKING_PO_1001 = "1Z999AA10123456784"
TRACKING_PO_1002 = "1Z999AA10123456791"
# internal reference -> (name, weight in kg)
PRODUCTS = {
    "CRUX-MUG": ("Crux Mug", 0.45),
    "CRUX-TEE": ("Crux T-Shirt", 0.2),
    "CRUX-CAP": ("Crux Cap", 0.15),
    "CRUX-BAG": ("Crux Tote Bag", 0.35),
}
STOCK_ON_HAND = 100
RPC_TIMEOUT = 60


def _load_sandbox_module():
    """The sandbox module, loaded from its file (its seed orders are the demo's orders)."""
    path = ROOT / "sandbox" / "crux_sandbox.py"
    spec = importlib.util.spec_from_file_location("crux_sandbox_demo", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SEED_ORDERS = {order["po_number"]: order for order in _load_sandbox_module().SEED_ORDERS}


class DemoError(Exception):
    """A step of the demo failed; the message says which and why."""


def say(message=""):
    print(message, flush=True)


# --------------------------------------------------------------------------- HTTP helpers


def http_json(url, payload=None, timeout=RPC_TIMEOUT):
    """GET (or POST ``payload`` as JSON) a local URL and return the decoded JSON answer."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(  # noqa: S310 - only http://127.0.0.1 URLs
        url, data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read().decode())


def http_ok(url, timeout=5):
    """Whether a GET of ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def port_in_use(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((HOST, port)) == 0


class RpcError(Exception):
    """An error answered by Odoo's JSON-RPC endpoint."""


class OdooRpc:
    """The smallest JSON-RPC client: /jsonrpc, services common and object."""

    def __init__(self, url, db, login, password):
        self.url = f"{url}/jsonrpc"
        self.db = db
        self.password = password
        self._id = 0
        self.uid = self._call("common", "login", db, login, password)
        if not self.uid:
            raise DemoError(f"Odoo refused the login {login!r} on database {db}.")

    def _call(self, service, method, *args):
        self._id += 1
        answer = http_json(
            self.url,
            {
                "jsonrpc": "2.0",
                "method": "call",
                "params": {"service": service, "method": method, "args": args},
                "id": self._id,
            },
        )
        if answer.get("error"):
            error = answer["error"]
            data = error.get("data") or {}
            raise RpcError(data.get("message") or error.get("message") or str(error))
        return answer.get("result")

    def call(self, model, method, *args, **kwargs):
        return self._call(
            "object", "execute_kw", self.db, self.uid, self.password, model, method, args, kwargs
        )

    def search_read(self, model, domain, fields, **kwargs):
        return self.call(model, "search_read", domain, fields=fields, **kwargs)


# --------------------------------------------------------------------------- processes


class Child:
    """A background process whose output goes to a log file (and some lines to the console)."""

    def __init__(self, name, cmd, log_path, echo=None):
        self.name = name
        self.log_path = log_path
        self._echo = echo
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "w", encoding="utf-8")
        # A session of its own: Ctrl-C reaches this script only, which then
        # stops each child exactly once (a second SIGINT makes Odoo exit hard).
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and scripts
            cmd,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        self._pump = threading.Thread(target=self._copy_output, daemon=True)
        self._pump.start()

    def _copy_output(self):
        for line in self.proc.stdout:
            self._log.write(line)
            self._log.flush()
            if self._echo:
                shown = self._echo(line.rstrip("\n"))
                if shown:
                    say(shown)

    def running(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Ask the process to stop, wait for it, kill it when it does not listen."""
        if self.running():
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                say(f"demo: {self.name} did not stop within {timeout} s; killing it")
                self.proc.kill()
                self.proc.wait(5)
        self._pump.join(5)
        self._log.close()

    def tail(self, lines=40):
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def wait_until(check, timeout, what, child=None, interval=0.3):
    """Poll ``check()`` until true; fail when ``child`` dies or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if child is not None and not child.running():
            raise DemoError(
                f"{child.name} exited (code {child.proc.returncode}) before {what}; "
                f"last lines of {child.log_path}:\n{child.tail()}"
            )
        time.sleep(interval)
    raise DemoError(f"timed out after {timeout} s waiting for {what}")


def _echo_sandbox(line):
    """Show the sandbox's one-line request log on the console, without the timestamp."""
    match = re.search(r"crux sandbox: \S+ (.*)$", line)
    if match and "[control]" not in line:
        return f"[crux sandbox] {match.group(1)}"
    return None


def _echo_odoo(line):
    """Show Odoo's warnings and errors on the console (everything is in the log file)."""
    if re.search(r" (WARNING|ERROR|CRITICAL) ", line):
        return f"[odoo] {line}"
    return None


def start_sandbox(port, echo):
    cmd = [
        sys.executable,
        str(ROOT / "sandbox" / "crux_sandbox.py"),
        "--host",
        HOST,
        "--port",
        str(port),
        "--token",
        TOKEN,
        "--seed",
    ]
    child = Child("Crux sandbox", cmd, LOG_DIR / "sandbox.log", _echo_sandbox if echo else None)
    url = f"http://{HOST}:{port}"
    wait_until(lambda: http_ok(f"{url}/_sandbox/orders/"), 15, "the Crux sandbox", child)
    return child, url


def start_odoo(args, addons_path, echo):
    cmd = [
        sys.executable,
        "-m",
        "odoo",
        "-d",
        args.db,
        "--addons-path",
        addons_path,
        "--db_host",
        db_host(),
        "--http-interface",
        HOST,
        "--http-port",
        str(args.port),
        f"--db-filter=^{re.escape(args.db)}$",
        "--no-database-list",
        "--max-cron-threads=1",
        "--workers=0",
        "--log-level=info",
    ]
    child = Child("Odoo", cmd, LOG_DIR / "odoo.log", _echo_odoo if echo else None)
    url = f"http://{HOST}:{args.port}"
    wait_until(lambda: http_ok(f"{url}/web/login"), 180, "Odoo's login page", child, 0.5)
    return child, url


# --------------------------------------------------------------------------- database


def db_host():
    return os.environ.get("PGHOST") or HOST


def default_addons_path():
    ADDONS_DIR.mkdir(parents=True, exist_ok=True)
    link = ADDONS_DIR / MODULE
    if not link.exists():
        link.symlink_to(ROOT)
    result = subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "tools" / "odoo_addons_path.py"), str(ADDONS_DIR)],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def load_odoo(args, addons_path):
    """Import Odoo and configure it for the demo database (warnings only on the console)."""
    import odoo

    odoo.tools.config.parse_config(
        [
            "-d",
            args.db,
            "--addons-path",
            addons_path,
            "--db_host",
            db_host(),
            "--log-level=warn",
            "--max-cron-threads=0",
        ],
        setup_logging=True,
    )
    return odoo


def recreate_database(odoo, args, addons_path):
    from odoo.service import db as db_service

    if db_service.exp_db_exist(args.db):
        say(f"demo: dropping database {args.db} (and its filestore)")
        db_service.exp_drop(args.db)
    odoo.sql_db.close_all()
    result = subprocess.run(  # noqa: S603
        [
            sys.executable,
            str(ROOT / "tools" / "install_db.py"),
            "--db",
            args.db,
            "--addons-path",
            addons_path,
            "--modules",
            MODULE,
            "--log",
            str(LOG_DIR / "install.log"),
        ],
        cwd=ROOT,
        check=False,
    )
    if result.returncode:
        raise DemoError(f"installing {MODULE} in {args.db} failed (see {LOG_DIR}/install.log)")


def with_env(odoo, db, callback):
    """Run ``callback(env)`` as superuser in a cursor on ``db`` and commit."""
    from odoo.modules.registry import Registry

    registry = Registry(db)
    try:
        with registry.cursor() as cr:
            env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
            return callback(env)  # the cursor commits when the block ends without error
    finally:
        Registry.delete(db)
        odoo.sql_db.close_all()


def configure_company(env, sandbox_url):
    """Point the main company at the local sandbox; admin logs in with admin/admin."""
    company = env.ref("base.main_company")
    company.write(
        {
            "crux_environment": "custom",
            "crux_api_url": sandbox_url,
            "crux_api_token": TOKEN,
            "crux_auto_send": True,
        }
    )
    env.ref("base.user_admin").password = "admin"  # noqa: S105 - demo login
    return company


def prepare_database(env, sandbox_url):
    """Demo data: products in stock, a carrier, a customer, two Crux-linked orders."""
    from odoo.fields import Command

    company = configure_company(env, sandbox_url)
    company.partner_id.tz = "America/New_York"
    env.ref("base.user_admin").tz = "America/New_York"
    warehouse = env["stock.warehouse"].search([("company_id", "=", company.id)], limit=1)
    costs = {
        line["sku_id"]: line["retailer_provided_sku_cost"]
        for order in SEED_ORDERS.values()
        for line in order["lines"]
    }
    products = {}
    for code, (name, weight) in PRODUCTS.items():
        product = env["product.product"].create(
            {
                "name": name,
                "default_code": code,
                "is_storable": True,
                "weight": weight,
                "list_price": costs.get(code, 10.0),
            }
        )
        quant = (
            env["stock.quant"]
            .with_context(inventory_mode=True)
            .create(
                {
                    "product_id": product.id,
                    "location_id": warehouse.lot_stock_id.id,
                    "inventory_quantity": STOCK_ON_HAND,
                }
            )
        )
        quant.action_apply_inventory()
        products[code] = product
    shipping = env["product.product"].create(
        {"name": "UPS Ground", "type": "service", "list_price": 12.5}
    )
    carrier = env["delivery.carrier"].create(
        {
            "name": "UPS",
            "delivery_type": "fixed",
            "fixed_price": 12.5,
            "product_id": shipping.id,
            "crux_method": "Ground",
        }
    )
    customer = env["res.partner"].create(
        {
            "name": "Northwind Retail (CRUXconnect)",
            "is_company": True,
            "street": "100 Market Street",
            "city": "Columbus",
            "zip": "43215",
            "country_id": env.ref("base.us").id,
            "email": "orders@northwind.example.com",
        }
    )

    def linked_order(po_number, tracking):
        crux_order = SEED_ORDERS[po_number]
        order = env["sale.order"].create(
            {
                "partner_id": customer.id,
                "client_order_ref": po_number,
                "order_line": [
                    Command.create(
                        {
                            "product_id": products[line["sku_id"]].id,
                            "product_uom_qty": line["quantity"],
                            "price_unit": line["retailer_provided_sku_cost"],
                        }
                    )
                    for line in crux_order["lines"]
                ],
            }
        )
        order.set_delivery_line(carrier, carrier.fixed_price)
        order.action_confirm()
        order.crux_order_uuid = crux_order["order_uuid"]
        order.action_crux_fetch_line_items()  # asks the sandbox for the line item uuids
        unlinked = order.order_line.filtered(
            lambda line: not line.is_delivery and not line.crux_line_item_uuid
        )
        if unlinked:
            raise DemoError(
                f"{order.name}: lines without a Crux line item: {unlinked.mapped('name')}"
            )
        picking = order.picking_ids.filtered(lambda p: p.picking_type_code == "outgoing")
        picking.action_assign()
        if picking.state != "assigned":
            raise DemoError(f"{picking.name}: not ready after reservation (state {picking.state})")
        picking.write({"carrier_tracking_ref": tracking, "carrier_price": carrier.fixed_price})
        return order, picking

    order_1, picking_1 = linked_order("PO-1001", TRACKING_PO_1001)
    # PO-1002: validated while automatic sending was off, so a person sends it by hand.
    company.crux_auto_send = False
    order_2, picking_2 = linked_order("PO-1002", TRACKING_PO_1002)
    picking_2.move_ids.picked = True
    picking_2.button_validate()
    company.crux_auto_send = True
    if picking_2.state != "done":
        raise DemoError(f"{picking_2.name}: could not be validated (state {picking_2.state})")
    return {
        "order_1": order_1.name,
        "picking_1": picking_1.name,
        "order_2": order_2.name,
        "picking_2": picking_2.name,
    }


def describe_database(env):
    """Names of the demo records, for the instructions (also with --no-reset)."""
    names = {}
    for key, po_number in (("1", "PO-1001"), ("2", "PO-1002")):
        order = env["sale.order"].search(
            [("crux_order_uuid", "=", SEED_ORDERS[po_number]["order_uuid"])], limit=1
        )
        picking = order.picking_ids.filtered(lambda p: p.picking_type_code == "outgoing")[:1]
        names[f"order_{key}"] = order.name or "?"
        names[f"picking_{key}"] = picking.name or "?"
    return names


# --------------------------------------------------------------------------- headless check


def headless_check(odoo_url, sandbox_url, db):
    """Validate the PO-1001 delivery over JSON-RPC and compare package_uuids with the sandbox."""
    order_uuid = SEED_ORDERS["PO-1001"]["order_uuid"]
    rpc = OdooRpc(odoo_url, db, "admin", "admin")
    say(f"headless: logged in to {odoo_url} as admin (uid {rpc.uid})")
    orders = rpc.search_read("sale.order", [("crux_order_uuid", "=", order_uuid)], ["name"])
    if not orders:
        raise DemoError(f"no sale order is linked to Crux order {order_uuid}")
    pickings = rpc.search_read(
        "stock.picking",
        [("sale_id", "=", orders[0]["id"]), ("picking_type_code", "=", "outgoing")],
        ["name", "state", "carrier_tracking_ref"],
    )
    picking = next((p for p in pickings if p["state"] not in ("done", "cancel")), None)
    if picking is None:
        raise DemoError(
            f"the delivery of {orders[0]['name']} is already done; "
            "run without --no-reset for a fresh demo database"
        )
    pid = picking["id"]
    say(
        f"headless: validating {picking['name']} of {orders[0]['name']} "
        f"(PO-1001, tracking {picking['carrier_tracking_ref']})"
    )
    moves = rpc.search_read(
        "stock.move", [("picking_id", "=", pid)], ["product_uom_qty", "quantity"]
    )
    for move in moves:
        if move["quantity"] != move["product_uom_qty"]:
            rpc.call("stock.move", "write", [move["id"]], {"quantity": move["product_uom_qty"]})
    rpc.call("stock.move", "write", [m["id"] for m in moves], {"picked": True})
    result = rpc.call("stock.picking", "button_validate", [pid])
    for _step in range(3):  # a wizard may ask a question (backorder, ...)
        if not isinstance(result, dict) or result.get("type") != "ir.actions.act_window":
            break
        model, context = result["res_model"], result.get("context") or {}
        say(f"headless: answering the wizard {model}")
        wizard_id = rpc.call(model, "create", {}, context=context)
        result = rpc.call(model, "process", [wizard_id], context=context)
    state = rpc.search_read("stock.picking", [("id", "=", pid)], ["state"])[0]["state"]
    if state != "done":
        raise DemoError(f"{picking['name']} is {state!r} after validation, not 'done'")
    say(f"headless: {picking['name']} is done; waiting for the scheduled action to send it")

    cron = rpc.search_read(
        "ir.model.data",
        [("module", "=", MODULE), ("name", "=", "ir_cron_crux_send")],
        ["res_id"],
    )[0]["res_id"]
    fields = ["crux_state", "crux_package_uuid"]
    started = time.monotonic()
    next_nudge = started + 10
    while True:
        record = rpc.search_read("stock.picking", [("id", "=", pid)], fields)[0]
        if record["crux_state"] in ("sent", "failed"):
            break
        now = time.monotonic()
        if now - started > 60:
            raise DemoError(
                f"{picking['name']} still has Crux state {record['crux_state']!r} after 60 s"
            )
        if now >= next_nudge:
            # The cron thread should have picked the trigger up; run the job directly.
            say("headless: the cron thread has not sent it yet; running the scheduled action")
            try:
                rpc.call("ir.cron", "method_direct_trigger", [cron])
            except RpcError as exc:
                say(f"headless: could not run it now ({exc}); waiting")
            next_nudge = now + 10
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    packages = rpc.search_read(
        "crux.package",
        [("picking_id", "=", pid)],
        ["name", "tracking_number", "state", "package_uuid", "last_error"],
    )
    say(f"headless: after {elapsed:.1f} s, {picking['name']} crux_state = {record['crux_state']}")
    say(f"headless: {picking['name']} crux_package_uuid = {record['crux_package_uuid']}")
    for package in packages:
        say(
            f"headless:   package {package['name']}: tracking {package['tracking_number']}, "
            f"{package['state']}, package_uuid {package['package_uuid']}"
            + (f", error: {package['last_error']}" if package["last_error"] else "")
        )
    recorded = [
        p for p in http_json(f"{sandbox_url}/_sandbox/packages/") if p["order_uuid"] == order_uuid
    ]
    for package in recorded:
        quantities = ", ".join(
            f"{item['line_item_uuid'][:8]}... x{item['quantity_shipped']}"
            for item in package["body"]["line_items"]
        )
        say(
            f"headless: sandbox recorded package_uuid {package['package_uuid']} "
            f"(tracking {package['tracking_number']}; {quantities})"
        )
    if record["crux_state"] != "sent":
        raise DemoError(f"{picking['name']}: Crux state is {record['crux_state']!r}, not 'sent'")
    odoo_uuids = sorted(u.strip() for u in (record["crux_package_uuid"] or "").split(",") if u)
    sandbox_uuids = sorted(p["package_uuid"] for p in recorded)
    if not odoo_uuids or odoo_uuids != sandbox_uuids:
        raise DemoError(
            f"package_uuids differ: Odoo has {odoo_uuids}, the sandbox recorded {sandbox_uuids}"
        )
    expected = {
        line["line_item_uuid"]: line["quantity"] for line in SEED_ORDERS["PO-1001"]["lines"]
    }
    shipped = {}
    for package in recorded:
        if package["tracking_number"] != TRACKING_PO_1001:
            raise DemoError(f"the sandbox recorded tracking {package['tracking_number']!r}")
        for item in package["body"]["line_items"]:
            uuid = item["line_item_uuid"]
            shipped[uuid] = shipped.get(uuid, 0) + item["quantity_shipped"]
    if shipped != expected:
        raise DemoError(f"shipped quantities {shipped} differ from the order's {expected}")
    say(f"headless: OK, Odoo and the sandbox agree on package_uuid {', '.join(odoo_uuids)}")


# --------------------------------------------------------------------------- main


def print_instructions(odoo_url, sandbox_url, names):
    say(
        f"""
==============================================================================
 crux_tracking demo is running

 Odoo        {odoo_url}/odoo/inventory      login admin / password admin
 Crux        {sandbox_url}  (local sandbox, token {TOKEN})
             packages it received: {sandbox_url}/_sandbox/packages/
 Logs        {LOG_DIR}/odoo.log, {LOG_DIR}/sandbox.log

 Try it:
 1. Sales > {names["order_1"]} (customer reference PO-1001): its Crux Order and the
    lines' Crux Line Items are filled in. Open its Delivery, {names["picking_1"]}
    (tracking reference {TRACKING_PO_1001}), and press Validate.
 2. Within seconds the scheduled action "Crux: send tracking" posts the package;
    reload: the Crux Status badge becomes Sent and the Crux tab shows the
    package_uuid the sandbox answered (lines "[crux sandbox] POST ..." appear here).
 3. {names["picking_2"]} ({names["order_2"]}, PO-1002) was validated while automatic
    sending was off: open it and press "Send to Crux".
 Also: Inventory > Configuration > Settings > CRUXconnect, Inventory > Crux >
 Crux Packages / Crux Requests, and the Crux Status column of the transfer list.

 Ctrl-C stops Odoo and the sandbox.
==============================================================================
"""
    )


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8069, help="Odoo's HTTP port (8069)")
    parser.add_argument(
        "--sandbox-port", type=int, default=8765, help="the Crux sandbox's port (8765)"
    )
    parser.add_argument("--db", default="crux_tracking_demo", help="demo database name")
    parser.add_argument(
        "--no-reset",
        action="store_true",
        help="keep the database when it exists (only re-point its company at the sandbox)",
    )
    parser.add_argument(
        "--headless",
        action="store_true",
        help="validate the PO-1001 delivery over JSON-RPC, check the package_uuid, then stop",
    )
    parser.add_argument("--addons-path", help="default: Odoo's add-ons and .build/addons")
    return parser.parse_args(argv)


def _raise_interrupt(_signum, _frame):
    raise KeyboardInterrupt


def run(args):
    children = []
    try:
        for port, what in ((args.port, "--port"), (args.sandbox_port, "--sandbox-port")):
            if port_in_use(port):
                raise DemoError(
                    f"port {port} on {HOST} is already in use (another demo or server?); "
                    f"stop it or choose another with {what}"
                )
        addons_path = args.addons_path or default_addons_path()
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        odoo = load_odoo(args, addons_path)
        from odoo.service import db as db_service

        sandbox, sandbox_url = start_sandbox(args.sandbox_port, echo=not args.headless)
        children.append(sandbox)
        say(f"demo: Crux sandbox on {sandbox_url} (token {TOKEN}), log {sandbox.log_path}")

        fresh = not (args.no_reset and db_service.exp_db_exist(args.db))
        odoo.sql_db.close_all()
        if fresh:
            recreate_database(odoo, args, addons_path)
            with_env(odoo, args.db, lambda env: prepare_database(env, sandbox_url))
            say(f"demo: database {args.db} prepared")
        else:
            with_env(odoo, args.db, lambda env: configure_company(env, sandbox_url))
            say(f"demo: keeping database {args.db}; its company now points at {sandbox_url}")
        names = with_env(odoo, args.db, describe_database)

        say(f"demo: starting Odoo on http://{HOST}:{args.port} (log {LOG_DIR / 'odoo.log'})")
        server, odoo_url = start_odoo(args, addons_path, echo=not args.headless)
        children.append(server)

        if args.headless:
            headless_check(odoo_url, sandbox_url, args.db)
            return 0
        print_instructions(odoo_url, sandbox_url, names)
        while all(child.running() for child in children):
            time.sleep(0.5)
        dead = next(child for child in children if not child.running())
        raise DemoError(
            f"{dead.name} exited (code {dead.proc.returncode}); last lines of "
            f"{dead.log_path}:\n{dead.tail()}"
        )
    except KeyboardInterrupt:
        say("\ndemo: stopping")
        return 130 if args.headless else 0
    finally:
        # Odoo first (its scheduled action may be talking to the sandbox).
        for child in reversed(children):
            child.stop(signal.SIGINT if child.name == "Odoo" else signal.SIGTERM)
        if children:
            say("demo: Odoo and the Crux sandbox are stopped")


def main(argv=None):
    args = parse_args(argv)
    # Explicit handlers: Ctrl-C and SIGTERM both stop the children cleanly, even
    # when this script was started with SIGINT ignored (e.g. in the background).
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return run(args)
    except (DemoError, RpcError, OSError) as exc:
        print(f"demo: FAILED: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
