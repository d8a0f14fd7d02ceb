"""Take the README's screenshots of a running demo (``make run``) with headless Chromium.

    python3 tools/screenshots.py --url http://127.0.0.1:8069 --out readme/screenshots

It logs in through /web/login, then drives the web client over the Chrome DevTools
protocol (``websocket-client``). When the PO-1001 delivery is not validated yet it
presses Validate in the browser and waits for the scheduled action to send it to
Crux; when the PO-1002 delivery has not been sent it presses "Send to Crux".
So it changes the demo data like a person trying the demo would.
"""

import argparse
import base64
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import websocket

WIDTH, HEIGHT = 1280, 800
MAX_BYTES = 300 * 1024
PO_1001 = "25d6eb53-e5c0-4019-8cf4-7330f1894e41"
PO_1002 = "eab96ccd-4ac8-45a3-afc5-5b0c9c9cd66e"

# JavaScript helper: call a model method with the browser's session.
CALL_KW_JS = """
window.__callKw = async (model, method, args, kwargs) => {
    const response = await fetch("/web/dataset/call_kw", {
        method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify({jsonrpc: "2.0", method: "call",
                              params: {model, method, args, kwargs: kwargs || {}}}),
    });
    const answer = await response.json();
    if (answer.error) {
        throw new Error((answer.error.data && answer.error.data.message) || answer.error.message);
    }
    return answer.result;
};
"""

# JavaScript helper: whether the web client has nothing left to load or render.
IDLE_JS = """
(() => {
    if (document.readyState !== "complete") return false;
    if (!document.body.classList.contains("o_web_client")) return true;  // e.g. the login page
    if (document.querySelector(".o_loading_indicator, .o_blockUI, .o-overlay-container .o_loading"))
        return false;
    return !!document.querySelector(".o_action_manager > *");
})()
"""


class ScreenshotError(Exception):
    """Something expected did not show up."""


class Cdp:
    """A minimal Chrome DevTools protocol client for one page."""

    def __init__(self, ws_url):
        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self._id = 0

    def send(self, method, **params):
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise ScreenshotError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression):
        result = self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = (details.get("exception") or {}).get("description") or details.get("text")
            raise ScreenshotError(f"JavaScript error: {text}")
        return result.get("result", {}).get("value")

    def close(self):
        with contextlib.suppress(Exception):
            self.ws.close()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_chromium(binary, profile):
    port = free_port()
    cmd = [
        binary,
        "--headless=new",
        f"--remote-debugging-port={port}",
        "--remote-debugging-address=127.0.0.1",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--hide-scrollbars",
        "--lang=en-US",
        f"--window-size={WIDTH},{HEIGHT}",
        "--force-device-scale-factor=1",
        f"--user-data-dir={profile}",
        "about:blank",
    ]
    proc = subprocess.Popen(  # noqa: S603 - the Chromium binary given on the command line
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            url = f"http://127.0.0.1:{port}/json/list"
            with urllib.request.urlopen(url, timeout=2) as response:
                pages = [t for t in json.loads(response.read()) if t.get("type") == "page"]
            if pages:
                return proc, pages[0]["webSocketDebuggerUrl"]
        except OSError:
            pass
        if proc.poll() is not None:
            raise ScreenshotError(f"{binary} exited with code {proc.returncode}")
        time.sleep(0.3)
    proc.kill()
    raise ScreenshotError(f"{binary} did not open its DevTools port")


class Browser:
    """The page, with the waits and clicks the screenshots need."""

    def __init__(self, cdp, base_url):
        self.cdp = cdp
        self.base_url = base_url.rstrip("/")
        cdp.send("Page.enable")
        cdp.send("Runtime.enable")
        cdp.send(
            "Emulation.setDeviceMetricsOverride",
            width=WIDTH,
            height=HEIGHT,
            deviceScaleFactor=1,
            mobile=False,
        )

    def wait_for(self, expression, what, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(ScreenshotError):
                if self.cdp.evaluate(expression):
                    return
            time.sleep(0.25)
        raise ScreenshotError(f"timed out waiting for {what}")

    def wait_idle(self, settle=1.0):
        self.wait_for(IDLE_JS, "the web client to finish loading")
        time.sleep(settle)
        self.wait_for(IDLE_JS, "the web client to finish loading")

    def goto(self, path, selector=None):
        self.cdp.send("Page.navigate", url=f"{self.base_url}{path}")
        time.sleep(0.5)
        self.wait_for("document.readyState === 'complete'", f"{path} to load")
        if selector:
            self.wait_for(f"!!document.querySelector({json.dumps(selector)})", selector)
        self.wait_idle()
        self.cdp.evaluate(CALL_KW_JS)

    def click(self, selector):
        found = self.cdp.evaluate(
            f"""(() => {{
                const element = document.querySelector({json.dumps(selector)});
                if (!element) return false;
                element.scrollIntoView({{block: "center"}});
                element.click();
                return true;
            }})()"""
        )
        if not found:
            raise ScreenshotError(f"nothing to click at {selector}")

    def call(self, model, method, args, kwargs=None):
        return self.cdp.evaluate(
            f"window.__callKw({json.dumps(model)}, {json.dumps(method)}, "
            f"{json.dumps(args)}, {json.dumps(kwargs or {})})"
        )

    def login(self, login, password):
        self.goto("/web/login", "input[name=login]")
        self.cdp.evaluate(
            f"""(() => {{
                document.querySelector("input[name=login]").value = {json.dumps(login)};
                document.querySelector("input[name=password]").value = {json.dumps(password)};
                document.querySelector("form.oe_login_form").submit();
            }})()"""
        )
        self.wait_for(
            "location.pathname.startsWith('/odoo') && !!document.querySelector('.o_navbar')",
            "the web client after logging in (wrong login or password?)",
        )
        self.wait_idle()
        self.cdp.evaluate(CALL_KW_JS)

    def screenshot(self, path):
        data = self.cdp.send("Page.captureScreenshot", format="png")["data"]
        raw = base64.b64decode(data)
        path.write_bytes(raw)
        note = "" if len(raw) <= MAX_BYTES else f" (over {MAX_BYTES // 1024} KB!)"
        print(f"screenshots: {path} {len(raw) // 1024} KB{note}", flush=True)


def outgoing_picking(browser, order_uuid):
    """(sale order, its delivery) of the sale order linked to a Crux order."""
    orders = browser.call(
        "sale.order", "search_read", [[["crux_order_uuid", "=", order_uuid]]], {"fields": ["name"]}
    )
    if not orders:
        raise ScreenshotError(f"no sale order is linked to Crux order {order_uuid}: run the demo")
    pickings = browser.call(
        "stock.picking",
        "search_read",
        [[["sale_id", "=", orders[0]["id"]], ["picking_type_code", "=", "outgoing"]]],
        {"fields": ["name", "state", "crux_state"], "order": "id"},
    )
    return orders[0], pickings[0]


def picking_state(browser, picking_id):
    return browser.call(
        "stock.picking",
        "read",
        [[picking_id], ["state", "crux_state", "crux_package_uuid"]],
    )[0]


def take_all(browser, out):
    out.mkdir(parents=True, exist_ok=True)
    order, picking = outgoing_picking(browser, PO_1001)
    _order_2, picking_2 = outgoing_picking(browser, PO_1002)
    # menu_id: the deliveries action is in no menu, so name the app to show its menu bar.
    menu = browser.call(
        "ir.model.data",
        "search_read",
        [[["module", "=", "stock"], ["name", "=", "menu_stock_root"]]],
        {"fields": ["res_id"]},
    )[0]["res_id"]
    form = f"/odoo/deliveries/{{}}?menu_id={menu}"

    # 1. Settings: the CRUXconnect block.
    browser.goto("/odoo/action-stock.action_stock_config_settings", "#crux_connection")
    browser.cdp.evaluate(
        """(() => {
            const setting = document.querySelector("#crux_connection");
            const block = setting.closest(".o_settings_container") || setting;
            const title = block.previousElementSibling || block;
            title.scrollIntoView({block: "start"});
        })()"""
    )
    time.sleep(0.5)
    browser.screenshot(out / "settings-cruxconnect.png")

    # 2. The sale order linked to the Crux order, with its lines' Crux line items.
    browser.goto(f"/odoo/orders/{order['id']}", ".o_form_view")
    browser.screenshot(out / "sale-order-crux-order.png")

    # 3. Validate the PO-1001 delivery in the browser (unless done) and wait for Crux.
    if picking["state"] != "done":
        print(f"screenshots: validating {picking['name']} in the browser", flush=True)
        browser.goto(form.format(picking["id"]), "button[name=button_validate]")
        browser.click("button[name=button_validate]")
        deadline = time.monotonic() + 30
        while picking_state(browser, picking["id"])["state"] != "done":
            if browser.cdp.evaluate(
                "!!document.querySelector('.modal .modal-footer .btn-primary')"
            ):
                browser.click(".modal .modal-footer .btn-primary")  # a wizard asks something
            if time.monotonic() > deadline:
                raise ScreenshotError(f"{picking['name']} was not validated within 30 s")
            time.sleep(0.5)
    deadline = time.monotonic() + 60
    while picking_state(browser, picking["id"])["crux_state"] != "sent":
        if time.monotonic() > deadline:
            raise ScreenshotError(f"{picking['name']} was not sent to Crux within 60 s")
        time.sleep(0.5)
    browser.goto(form.format(picking["id"]), "a.nav-link[name=crux]")
    browser.click("a.nav-link[name=crux]")
    browser.wait_for(
        "!!document.querySelector('.o_notebook .tab-pane.active [name=crux_package_uuid]')",
        "the Crux tab",
    )
    time.sleep(0.5)
    browser.screenshot(out / "transfer-crux-tab.png")

    # 4. PO-1002, validated while automatic sending was off: "Send to Crux".
    if picking_state(browser, picking_2["id"])["crux_state"] != "sent":
        browser.goto(form.format(picking_2["id"]), "button[name=action_crux_send]")
        browser.screenshot(out / "transfer-send-to-crux.png")
        browser.click("button[name=action_crux_send]")
        browser.wait_for(
            "!!document.querySelector('.o_notification')", "the Sent to Crux notification"
        )
        time.sleep(1.0)
        browser.screenshot(out / "transfer-sent-notification.png")

    # 5. The deliveries list with its Crux Status column.
    browser.goto(f"/odoo/deliveries?menu_id={menu}", ".o_list_view")
    browser.screenshot(out / "transfer-list-crux-status.png")

    # 6. The Crux package of PO-1001: lines, payload, requests.
    packages = browser.call(
        "crux.package", "search_read", [[["picking_id", "=", picking["id"]]]], {"fields": ["id"]}
    )
    browser.goto(
        f"/odoo/action-crux_tracking.crux_package_action/{packages[0]['id']}", ".o_form_view"
    )
    browser.screenshot(out / "crux-package.png")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8069")
    parser.add_argument("--out", default="readme/screenshots")
    parser.add_argument("--login", default="admin")
    parser.add_argument("--password", default="admin")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args(argv)

    profile = tempfile.mkdtemp(prefix="crux-screenshots-")
    proc = cdp = None
    try:
        proc, ws_url = start_chromium(args.chromium, profile)
        cdp = Cdp(ws_url)
        browser = Browser(cdp, args.url)
        browser.login(args.login, args.password)
        take_all(browser, Path(args.out))
    except (ScreenshotError, OSError, websocket.WebSocketException) as exc:
        print(f"screenshots: FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        if cdp:
            cdp.close()
        if proc:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
