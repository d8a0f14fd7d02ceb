"""A strict local fake of the CRUXconnect TIMP API (standard library only).

It serves the two endpoints the add-on uses, and checks requests the way a
Django REST Framework server would:

* ``POST /timp/orders/tracking/<order_uuid>/``  Add Order Tracking -> 201 ``{"package_uuid"}``
* ``GET  /timp/orders/<order_uuid>/``           Get Order Detail   -> 200 order

Checks, in order: unknown path or malformed uuid (404 HTML), ``Authorization:
Token <token>`` (401), HTTP verb (405), ``Content-Type: application/json`` (415),
body and field validation (400, DRF-style field errors), unknown order (404
HTML), line item / quantity consistency (422, a JSON list of messages).

In-process use (tests)::

    with CruxSandbox(seed=True) as crux:
        crux.inject(503, retry_after=1)          # next request answers 503
        crux.inject(store_then_close=True)       # the one after is stored, then dropped
        ...  # point the client at crux.url with crux.token
        crux.tracking_posts(SEED_ORDER_UUID)     # JSON bodies that were stored

Out-of-process use (demo, manual testing)::

    python3 sandbox/crux_sandbox.py --port 8765 --token demo-token   # seeds by default

Control endpoints, without authentication, JSON in and out:
``POST /_sandbox/orders/`` (``add_order`` kwargs), ``GET /_sandbox/orders/``,
``GET /_sandbox/orders/<uuid>/``, ``POST /_sandbox/faults/`` (``inject`` kwargs),
``GET /_sandbox/faults/``, ``POST /_sandbox/delay/`` (``{"delay": 0.05}``),
``GET /_sandbox/requests/``, ``GET /_sandbox/packages/``, ``POST /_sandbox/reset/``.
Control requests are neither recorded nor affected by faults or delay.

Decimals are answered the way DRF renders them by default: strings with two
decimals (``"13.98"``). One log line per request goes to the module's logger at
DEBUG level (the command line sends it to stderr); the Authorization header and
the token are never logged.
"""

import argparse
import contextlib
import copy
import datetime
import http
import json
import logging
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_logger = logging.getLogger(__name__)

SEED_ORDER_UUID = "25d6eb53-e5c0-4019-8cf4-7330f1894e41"
SEED_LINE_UUID = "71b8b807-3c6b-49c8-91dd-5798896f5253"

#: Orders created by ``seed=True`` / ``--seed``; each entry is a set of ``add_order`` kwargs.
SEED_ORDERS = (
    {
        "order_uuid": SEED_ORDER_UUID,
        "po_number": "PO-1001",
        "lines": (
            {
                "line_item_uuid": SEED_LINE_UUID,
                "sku_id": "CRUX-MUG",
                "quantity": 5,
                "retailer_provided_sku_cost": 13.98,
            },
            {
                "line_item_uuid": "7acfc06d-8ab9-4efa-ad0a-44ba540a6d26",
                "sku_id": "CRUX-TEE",
                "quantity": 3,
                "retailer_provided_sku_cost": 9.50,
            },
        ),
    },
    {
        "order_uuid": "eab96ccd-4ac8-45a3-afc5-5b0c9c9cd66e",
        "po_number": "PO-1002",
        "lines": (
            {
                "line_item_uuid": "052541a7-5353-4066-ab84-3f20876a040a",
                "sku_id": "CRUX-CAP",
                "quantity": 2,
                "retailer_provided_sku_cost": 7.25,
            },
            {
                "line_item_uuid": "52e74e41-12f8-49e8-bcaa-bd07c18a2df0",
                "sku_id": "CRUX-BAG",
                "quantity": 10,
                "retailer_provided_sku_cost": 24.00,
            },
        ),
    },
    {
        "order_uuid": "f15f0a05-2ce2-490d-ab4a-71584e7bf5a6",
        "po_number": "PO-1003",
        "lines": (
            {
                "line_item_uuid": "1ba82744-2bb8-45fd-a120-ce9c512512f4",
                "sku_id": "CRUX-CAP",
                "quantity": 4,
                "retailer_provided_sku_cost": 7.25,
            },
            {
                "line_item_uuid": "103e5653-504e-4508-91ec-fcd42c750517",
                "sku_id": "CRUX-BAG",
                "quantity": 6,
                "retailer_provided_sku_cost": 24.00,
            },
            {
                "line_item_uuid": "de9368d4-5721-4b77-9ed3-49b850369098",
                "sku_id": "CRUX-MUG",
                "quantity": 2,
                "retailer_provided_sku_cost": 13.98,
            },
        ),
    },
)

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_UUID_RE = re.compile(rf"^{_UUID}$")
_TRACKING_RE = re.compile(rf"^/timp/orders/tracking/(?P<order_uuid>{_UUID})/$")
_ORDER_RE = re.compile(rf"^/timp/orders/(?P<order_uuid>{_UUID})/$")
_CONTROL_ORDER_RE = re.compile(rf"^/_sandbox/orders/(?P<order_uuid>{_UUID})/$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

_NOT_FOUND_HTML = (
    "<html><body><h1>Not Found</h1>"
    "<p>The requested resource was not found on this server.</p></body></html>\n"
)
_MALFORMED_BODY = "<html><body><h1>Bad Gateway</h1><p>oops</p></body></html>\n"
_MAX_BODY = 10 * 1024 * 1024
_SKU_NAMESPACE = uuid.UUID("0f6c2a52-5b8e-4e43-9d55-0d6b6f1f7a10")

_REQUIRED = "This field is required."
_NOT_NULL = "This field may not be null."
_NOT_BLANK = "This field may not be blank."
_NOT_STRING = "Not a valid string."


# --------------------------------------------------------------------------- helpers


def _reject_constant(name):
    """json parse_constant hook: NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not valid JSON")


def _loads(text):
    """Parse JSON strictly (no NaN/Infinity)."""
    return json.loads(text, parse_constant=_reject_constant)


def _now_iso():
    """Current UTC time, rendered like DRF does (2024-05-01T12:00:00.123456Z)."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"


def _money(value):
    """Render a Decimal the way DRF's DecimalField does by default (string, 2 places)."""
    return None if value is None else str(value.quantize(Decimal("0.01")))


def _parse_decimal(value, places=2):
    """Return (Decimal, None) or (None, error message) for a number or numeric string."""
    if value is None:
        return None, _NOT_NULL
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None, "A valid number is required."
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None, "A valid number is required."
    if not number.is_finite():
        return None, "A valid number is required."
    exponent = number.as_tuple().exponent
    if exponent < 0 and -exponent > places:
        return None, f"Ensure that there are no more than {places} decimal places."
    if number < 0:
        return None, "Ensure this value is greater than or equal to 0."
    return number, None


def _check_string(value, allow_blank=False):
    """Return an error message for a non-string / blank value, else None."""
    if value is None:
        return _NOT_NULL
    if not isinstance(value, str):
        return _NOT_STRING
    if not allow_blank and not value.strip():
        return _NOT_BLANK
    return None


def _list_error(value):
    """Return an error message when value is not a JSON array, else None."""
    if value is None:
        return _NOT_NULL
    if not isinstance(value, list):
        return f'Expected a list of items but got type "{type(value).__name__}".'
    return None


def _not_a_dict(value):
    """DRF's error for a nested object that is not an object."""
    return {
        "non_field_errors": [
            f"Invalid data. Expected a dictionary, but got {type(value).__name__}."
        ]
    }


def _validate_line_item(item):
    """Field errors (dict) of one line_items[] entry."""
    if not isinstance(item, dict):
        return _not_a_dict(item)
    errors = {}
    if "line_item_uuid" not in item:
        errors["line_item_uuid"] = [_REQUIRED]
    elif message := _check_string(item["line_item_uuid"]):
        errors["line_item_uuid"] = [message]
    quantity = item.get("quantity_shipped")
    if "quantity_shipped" not in item:
        errors["quantity_shipped"] = [_REQUIRED]
    elif quantity is None:
        errors["quantity_shipped"] = [_NOT_NULL]
    elif isinstance(quantity, bool) or not isinstance(quantity, int):
        errors["quantity_shipped"] = ["A valid integer is required."]
    elif quantity < 1:
        errors["quantity_shipped"] = ["Ensure this value is greater than or equal to 1."]
    if "supplier_provided_sku_cost" in item:
        _value, message = _parse_decimal(item["supplier_provided_sku_cost"])
        if message:
            errors["supplier_provided_sku_cost"] = [message]
    return errors


def _validate_attribute(item):
    """Field errors (dict) of one package_attributes[] entry."""
    if not isinstance(item, dict):
        return _not_a_dict(item)
    errors = {}
    for name in ("attribute_name", "attribute_value"):
        if name not in item:
            errors[name] = [_REQUIRED]
        elif message := _check_string(item[name], allow_blank=name == "attribute_value"):
            errors[name] = [message]
    return errors


def _validate_nested(data, name, validator, required):
    """Validate a list of objects; DRF reports one error dict per item ({} when valid)."""
    if name not in data:
        return [_REQUIRED] if required else None
    value = data[name]
    message = _list_error(value)
    if message:
        return [message]
    if required and not value:
        return ["This list may not be empty."]
    item_errors = [validator(item) for item in value]
    return item_errors if any(item_errors) else None


def validate_tracking(data):
    """Validate an Add Order Tracking body; return a dict of DRF-style field errors."""
    errors = {}
    if "tracking_number" not in data:
        errors["tracking_number"] = [_REQUIRED]
    elif message := _check_string(data["tracking_number"]):
        errors["tracking_number"] = [message]
    for name in ("supplier_provided_carrier", "supplier_provided_method"):
        if name in data and (message := _check_string(data[name])):
            errors[name] = [message]
    for name in ("package_weight", "package_ship_cost"):
        if name in data:
            _value, message = _parse_decimal(data[name])
            if message:
                errors[name] = [message]
    if "package_ship_date" in data:
        value = data["package_ship_date"]
        message = _check_string(value)
        if not message:
            try:
                if not _DATE_RE.match(value):
                    raise ValueError(value)
                datetime.date.fromisoformat(value)
            except ValueError:
                message = "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."
        if message:
            errors["package_ship_date"] = [message]
    nested = _validate_nested(data, "line_items", _validate_line_item, required=True)
    if nested:
        errors["line_items"] = nested
    nested = _validate_nested(data, "package_attributes", _validate_attribute, required=False)
    if nested:
        errors["package_attributes"] = nested
    return errors


# --------------------------------------------------------------------------- answers


@dataclass
class _Answer:
    """What to send back: status None means close the connection without answering."""

    status: int | None
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)
    record: object = None  # what goes into the request record's "response"
    close: bool = False


def _json_answer(status, payload, headers=None, close=False):
    """A JSON answer."""
    body = json.dumps(payload).encode()
    return _Answer(status, body, "application/json", dict(headers or {}), payload, close)


def _raw_answer(status, text, headers=None):
    """An answer with a raw text body (JSON content type if it happens to parse)."""
    try:
        record = _loads(text)
        content_type = "application/json"
    except ValueError:
        record, content_type = text, "text/html; charset=utf-8"
    return _Answer(status, text.encode(), content_type, dict(headers or {}), record)


def _not_found():
    """Django's HTML 404 page."""
    return _Answer(404, _NOT_FOUND_HTML.encode(), "text/html; charset=utf-8", {}, _NOT_FOUND_HTML)


def _method_not_allowed(method, allowed):
    """DRF's 405."""
    return _json_answer(
        405, {"detail": f'Method "{method}" not allowed.'}, {"Allow": f"{allowed}, OPTIONS"}
    )


@dataclass(frozen=True)
class _Fault:
    """One queued fault, consumed by one matching request."""

    status: int | None = None
    delay: float = 0.0
    close: bool = False
    store_then_close: bool = False
    malformed: bool = False
    body: str | None = None
    retry_after: str | None = None
    method: str | None = None

    @property
    def label(self):
        """A short description, stored in the request record."""
        parts = []
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.delay:
            parts.append(f"delay={self.delay:g}")
        for name in ("close", "store_then_close", "malformed"):
            if getattr(self, name):
                parts.append(name)
        if self.body is not None:
            parts.append("body")
        if self.retry_after is not None:
            parts.append(f"retry_after={self.retry_after}")
        return "+".join(parts) or "noop"


# --------------------------------------------------------------------------- sandbox


class CruxSandbox:
    """A fake Crux API server; see the module docstring."""

    def __init__(self, host="127.0.0.1", port=0, token="sandbox-token", seed=False, delay=0.0):
        self.host = host
        self.port = port
        self.token = token
        self.delay = delay
        self._lock = threading.Lock()
        self._orders = {}  # order uuid -> order dict (as GET answers it)
        self._line_orders = {}  # line item uuid -> order uuid
        self._requests = []
        self._faults = []
        self._packages = []
        self._po_counter = 0
        self._server = None
        self._thread = None
        if seed:
            for order in SEED_ORDERS:
                self.add_order(**copy.deepcopy(order))

    # ---------------------------------------------------------------- lifecycle

    @property
    def url(self):
        """Base URL, without trailing slash."""
        return f"http://{self.host}:{self.port}"

    def start(self):
        """Serve in a background daemon thread (port 0 picks a free port)."""
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), _Handler)
        server.sandbox = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"crux-sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self):
        """Stop serving and drop every open (keep-alive) connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    # ---------------------------------------------------------------- data

    def add_order(self, order_uuid=None, po_number=None, lines=()):
        """Create an order (lines: dicts with sku_id, quantity, optional line_item_uuid and
        retailer_provided_sku_cost); return it as GET would."""
        order_uuid = str(order_uuid or uuid.uuid4()).lower()
        if not _UUID_RE.match(order_uuid):
            raise ValueError(f"order_uuid {order_uuid!r} is not a uuid")
        line_items = []
        for line in lines:
            line = dict(line)
            unknown = set(line) - {
                "sku_id",
                "quantity",
                "line_item_uuid",
                "retailer_provided_sku_cost",
            }
            if unknown:
                raise ValueError(f"unknown line keys: {sorted(unknown)}")
            sku_id, quantity = line.get("sku_id"), line.get("quantity")
            if not isinstance(sku_id, str) or not sku_id:
                raise ValueError("each line needs a sku_id (non-empty string)")
            if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
                raise ValueError("each line needs a quantity (integer >= 1)")
            line_uuid = str(line.get("line_item_uuid") or uuid.uuid4()).lower()
            if not _UUID_RE.match(line_uuid):
                raise ValueError(f"line_item_uuid {line_uuid!r} is not a uuid")
            cost = None
            if line.get("retailer_provided_sku_cost") is not None:
                cost, message = _parse_decimal(line["retailer_provided_sku_cost"])
                if message:
                    raise ValueError(f"retailer_provided_sku_cost: {message}")
            line_items.append(
                {
                    "line_item_uuid": line_uuid,
                    "status": "Allocated",
                    "sku_id": sku_id,
                    "sku_uuid": str(uuid.uuid5(_SKU_NAMESPACE, sku_id)),
                    "quantity": quantity,
                    "retailer_provided_sku_cost": _money(cost),
                    "allocation": {
                        "status": "Allocated",
                        "quantity": quantity,
                        "warehouse": "Sandbox Warehouse",
                    },
                    "tracking": [],
                }
            )
        line_uuids = [line["line_item_uuid"] for line in line_items]
        if len(set(line_uuids)) != len(line_uuids):
            raise ValueError("duplicate line_item_uuid in lines")
        with self._lock:
            if order_uuid in self._orders:
                raise ValueError(f"order {order_uuid} already exists")
            taken = [u for u in line_uuids if u in self._line_orders]
            if taken:
                raise ValueError(f"line_item_uuid already used by another order: {taken}")
            self._po_counter += 1
            order = {
                "order_uuid": order_uuid,
                "uuid": order_uuid,
                "po_number": po_number or f"PO-SBX-{self._po_counter:04d}",
                "address": {
                    "name": "Jane Doe",
                    "company": "",
                    "address1": "123 Main Street",
                    "address2": "Suite 4",
                    "city": "Springfield",
                    "state": "IL",
                    "postal_code": "62701",
                    "country": "US",
                    "phone": "555-0100",
                    "email": "jane.doe@example.com",
                },
                "requested_shipping": {"shipping_carrier": "UPS", "shipping_method": "Ground"},
                "line_items": line_items,
            }
            self._orders[order_uuid] = order
            for line_uuid in line_uuids:
                self._line_orders[line_uuid] = order_uuid
            return copy.deepcopy(order)

    def get_order(self, order_uuid):
        """Deep copy of a stored order (KeyError when unknown)."""
        with self._lock:
            return copy.deepcopy(self._orders[str(order_uuid).lower()])

    def orders(self):
        """Deep copies of every stored order."""
        with self._lock:
            return copy.deepcopy(list(self._orders.values()))

    def inject(
        self,
        status=None,
        *,
        count=1,
        delay=0.0,
        close=False,
        store_then_close=False,
        malformed=False,
        body=None,
        retry_after=None,
        method=None,
    ):
        """Queue a fault for the next `count` API requests (only `method` ones if given)."""
        if status is not None and (
            isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599
        ):
            raise ValueError("status must be an HTTP status code")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError("count must be a positive integer")
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
            raise ValueError("delay must be a number >= 0")
        if close and store_then_close:
            raise ValueError("close and store_then_close are exclusive")
        if (close or store_then_close) and (status is not None or malformed or body is not None):
            raise ValueError("a closed connection has no status or body")
        if body is not None and not isinstance(body, str):
            raise ValueError("body must be a string")
        fault = _Fault(
            status=status,
            delay=float(delay),
            close=bool(close),
            store_then_close=bool(store_then_close),
            malformed=bool(malformed),
            body=body,
            retry_after=None if retry_after is None else str(retry_after),
            method=method.upper() if method else None,
        )
        with self._lock:
            self._faults.extend([fault] * count)

    def pending_faults(self):
        """Labels of the faults still queued."""
        with self._lock:
            return [{"fault": f.label, "method": f.method} for f in self._faults]

    def reset(self):
        """Forget recorded requests and pending faults (orders and packages stay)."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()

    @property
    def requests(self):
        """Snapshot (deep copy) of every API request received, oldest first."""
        with self._lock:
            return copy.deepcopy(self._requests)

    def tracking_posts(self, order_uuid=None, status=201):
        """JSON bodies of tracking POSTs; status=201 means "stored" (even if the connection
        was then closed), None means all, any other code means answered with that code."""
        wanted = str(order_uuid).lower() if order_uuid else None
        result = []
        with self._lock:
            for record in self._requests:
                match = _TRACKING_RE.match(record["path"].split("?", 1)[0])
                if record["method"] != "POST" or not match:
                    continue
                if wanted and match["order_uuid"].lower() != wanted:
                    continue
                if status == 201:
                    if record["package_uuid"] is None:
                        continue
                elif status is not None and record["status"] != status:
                    continue
                result.append(copy.deepcopy(record["json"]))
        return result

    def packages(self):
        """Every stored package: package_uuid, order_uuid, tracking_number, body."""
        with self._lock:
            return copy.deepcopy(self._packages)

    # ---------------------------------------------------------------- API requests

    def _take_fault(self, method):
        """Pop the first queued fault matching the method (caller holds no lock)."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.method is None or fault.method == method:
                    return self._faults.pop(index)
        return None

    def _serve_api(self, method, path, headers, raw):
        """Answer one API request, applying faults; record it before returning."""
        text = raw.decode("utf-8", errors="replace")
        try:
            parsed = _loads(text) if text else None
        except ValueError:
            parsed = None
        record = {
            "method": method,
            "path": path,
            "headers": dict(headers.items()),
            "body": text,
            "json": parsed,
            "status": None,
            "response": None,
            "fault": None,
            "time": time.time(),
            "package_uuid": None,
        }
        fault = self._take_fault(method)
        wait = self.delay + (fault.delay if fault else 0.0)
        if wait > 0:
            time.sleep(wait)
        if fault and fault.close:
            answer = _Answer(None)
        elif fault and fault.status is not None:
            if fault.body is not None:
                answer = _raw_answer(fault.status, fault.body)
            else:
                answer = _json_answer(fault.status, {"detail": _phrase(fault.status)})
        else:
            answer, record["package_uuid"] = self._process(method, path, headers, raw)
            if fault and fault.store_then_close:
                answer = _Answer(None)
            elif fault and (fault.malformed or fault.body is not None):
                body = fault.body if fault.body is not None else _MALFORMED_BODY
                answer = _raw_answer(answer.status, body, answer.headers)
        if fault and fault.retry_after is not None and answer.status is not None:
            answer.headers["Retry-After"] = fault.retry_after
        record["status"], record["response"] = answer.status, answer.record
        record["fault"] = fault.label if fault else None
        with self._lock:
            self._requests.append(record)
        return answer

    def _process(self, method, path, headers, raw):
        """Route, authenticate, validate, store; return (answer, package_uuid or None)."""
        route = path.split("?", 1)[0]
        match = _TRACKING_RE.match(route)
        allowed = "POST"
        if not match:
            match, allowed = _ORDER_RE.match(route), "GET"
        if not match:
            return _not_found(), None
        denied = self._authenticate(headers.get("Authorization"))
        if denied:
            return denied, None
        if method != allowed:
            return _method_not_allowed(method, allowed), None
        order_uuid = match["order_uuid"].lower()
        if method == "GET":
            with self._lock:
                order = copy.deepcopy(self._orders.get(order_uuid))
            return (_json_answer(200, order) if order else _not_found()), None
        content_type = headers.get("Content-Type") or ""
        if not content_type.strip().lower().startswith("application/json"):
            return _json_answer(
                415, {"detail": f'Unsupported media type "{content_type}" in request.'}
            ), None
        try:
            data = _loads(raw.decode("utf-8")) if raw.strip() else {}
        except (UnicodeDecodeError, ValueError) as exc:
            return _json_answer(400, {"detail": f"JSON parse error - {exc}"}), None
        if not isinstance(data, dict):
            return _json_answer(400, _not_a_dict(data)), None
        errors = validate_tracking(data)
        if errors:
            return _json_answer(400, errors), None
        return self._add_tracking(order_uuid, data)

    def _authenticate(self, value):
        """None when the Authorization header is exactly 'Token <token>', else a 401."""
        if value == f"Token {self.token}":
            return None
        parts = (value or "").split()
        if not parts or parts[0].lower() != "token":
            detail = "Authentication credentials were not provided."
        elif len(parts) == 1:
            detail = "Invalid token header. No credentials provided."
        elif len(parts) > 2:
            detail = "Invalid token header. Token string should not contain spaces."
        else:
            detail = "Invalid token."
        return _json_answer(401, {"detail": detail}, {"WWW-Authenticate": "Token"})

    def _add_tracking(self, order_uuid, data):
        """Check quantities against the order and store the package (422/404/201)."""
        quantities = defaultdict(int)
        for item in data["line_items"]:
            quantities[item["line_item_uuid"].strip().lower()] += item["quantity_shipped"]
        with self._lock:
            order = self._orders.get(order_uuid)
            if order is None:
                return _not_found(), None
            lines = {line["line_item_uuid"]: line for line in order["line_items"]}
            problems = []
            for line_uuid, quantity in quantities.items():
                line = lines.get(line_uuid)
                if line is None:
                    problems.append(f"Line item {line_uuid} does not belong to order {order_uuid}.")
                    continue
                shipped = sum(entry["quantity"] for entry in line["tracking"])
                if shipped + quantity > line["quantity"]:
                    unit = "unit" if quantity == 1 else "units"
                    problems.append(
                        f"Line item {line_uuid} cannot ship {quantity} more {unit}: "
                        f"{line['quantity']} ordered, {shipped} already shipped."
                    )
            if problems:
                return _json_answer(422, problems), None
            package_uuid = str(uuid.uuid4())
            weight, cost = (
                _parse_decimal(data[name])[0] if name in data else None
                for name in ("package_weight", "package_ship_cost")
            )
            created = _now_iso()
            for line_uuid, quantity in quantities.items():
                line = lines[line_uuid]
                line["tracking"].append(
                    {
                        "tracking_number": data["tracking_number"].strip(),
                        "shipping_carrier": data.get("supplier_provided_carrier"),
                        "shipping_method": data.get("supplier_provided_method"),
                        "shipping_weight": _money(weight),
                        "shipping_cost": _money(cost),
                        "shipping_date": data.get("package_ship_date"),
                        "created_date": created,
                        "quantity": quantity,
                        "package_attributes": copy.deepcopy(data.get("package_attributes", [])),
                    }
                )
                if sum(entry["quantity"] for entry in line["tracking"]) >= line["quantity"]:
                    line["status"] = "HasTracking"
            self._packages.append(
                {
                    "package_uuid": package_uuid,
                    "order_uuid": order_uuid,
                    "tracking_number": data["tracking_number"].strip(),
                    "body": copy.deepcopy(data),
                }
            )
        return _json_answer(201, {"package_uuid": package_uuid}), package_uuid

    # ---------------------------------------------------------------- control requests

    def _serve_control(self, method, path, raw):
        """Answer a /_sandbox/ control request (not recorded, no auth, no faults)."""
        route = path.split("?", 1)[0]
        try:
            data = _loads(raw.decode("utf-8")) if raw.strip() else {}
        except (UnicodeDecodeError, ValueError) as exc:
            return _json_answer(400, {"detail": f"JSON parse error - {exc}"})
        if method == "POST" and not isinstance(data, dict):
            return _json_answer(400, {"detail": "expected a JSON object"})
        routes = {
            "/_sandbox/orders/": {
                "GET": self.orders,
                "POST": lambda: (201, self.add_order(**data)),
            },
            "/_sandbox/faults/": {
                "GET": self.pending_faults,
                "POST": lambda: (201, self._inject_control(data)),
            },
            "/_sandbox/delay/": {
                "GET": lambda: {"delay": self.delay},
                "POST": lambda: self._delay_control(data),
            },
            "/_sandbox/requests/": {"GET": lambda: self.requests},
            "/_sandbox/packages/": {"GET": self.packages},
            "/_sandbox/reset/": {"POST": lambda: (self.reset(), {"reset": True})[1]},
        }
        match = _CONTROL_ORDER_RE.match(route)
        if match:
            routes[route] = {"GET": lambda: self.get_order(match["order_uuid"])}
        if route not in routes:
            return _json_answer(404, {"detail": "Not found."})
        handler = routes[route].get(method)
        if handler is None:
            return _method_not_allowed(method, ", ".join(routes[route]))
        try:
            result = handler()
        except KeyError:
            return _json_answer(404, {"detail": "Not found."})
        except (TypeError, ValueError) as exc:
            return _json_answer(400, {"detail": str(exc)})
        status, payload = result if isinstance(result, tuple) else (200, result)
        return _json_answer(status, payload)

    def _inject_control(self, data):
        """POST /_sandbox/faults/ -> inject(**data)."""
        self.inject(**data)
        return {"pending": len(self.pending_faults())}

    def _delay_control(self, data):
        """POST /_sandbox/delay/ -> set the global delay."""
        delay = data.get("delay")
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
            raise ValueError("delay must be a number >= 0")
        self.delay = float(delay)
        return {"delay": self.delay}


def _phrase(status):
    """Reason phrase of a status code, for injected error bodies."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Injected sandbox fault."


# --------------------------------------------------------------------------- HTTP plumbing


class _BodyError(Exception):
    """The request body could not be read (bad framing)."""

    def __init__(self, status, detail):
        super().__init__(detail)
        self.status = status


class _Server(ThreadingHTTPServer):
    """Threading server that keeps track of open connections so stop() can drop them."""

    daemon_threads = True
    allow_reuse_address = True
    sandbox = None

    def __init__(self, *args, **kwargs):
        self._connections = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def track(self, connection, add):
        """Remember (or forget) an open client socket."""
        with self._connections_lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self):
        """Shut down every open client socket."""
        with self._connections_lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            _shutdown(connection)

    def handle_error(self, request, client_address):
        """Log unexpected errors without crashing; ignore clients hanging up."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        _logger.exception("crux sandbox: error while serving %s", client_address)


def _shutdown(connection):
    """Shut a socket down in both directions so the peer notices at once."""
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler delegating to the server's CruxSandbox."""

    protocol_version = "HTTP/1.1"
    server_version = "CruxSandbox/1.0"
    disable_nagle_algorithm = True
    timeout = 120  # idle keep-alive connections are dropped after this many seconds

    def setup(self):
        super().setup()
        self.server.track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def log_request(self, code="-", size="-"):
        """Silence the default access log; _dispatch logs one line per request."""

    def log_message(self, fmt, *args):
        _logger.debug("crux sandbox: %s %s", self.address_string(), fmt % args)

    def _read_body(self):
        """Read the request body (Content-Length or chunked)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while True:
                size_line = self.rfile.readline(1024)
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise _BodyError(400, "Malformed chunked body.") from None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > _MAX_BODY:
                    raise _BodyError(413, "Request body too large.")
                chunk = self.rfile.read(size)
                self.rfile.readline(1024)
                if len(chunk) < size:
                    raise _BodyError(400, "Truncated chunked body.")
                chunks.append(chunk)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            length = int(length)
            if length < 0:
                raise ValueError(length)
        except ValueError:
            raise _BodyError(400, "Invalid Content-Length.") from None
        if length > _MAX_BODY:
            raise _BodyError(413, "Request body too large.")
        body = self.rfile.read(length)
        if len(body) < length:
            raise _BodyError(400, "Truncated request body.")
        return body

    def _dispatch(self):
        """Read, answer and log one request; never let an exception kill the server."""
        started = time.monotonic()
        sandbox = self.server.sandbox
        control = self.path.startswith("/_sandbox/")
        answer = None
        try:
            try:
                raw = self._read_body()
            except _BodyError as exc:
                answer = _json_answer(exc.status, {"detail": str(exc)}, close=True)
            else:
                if control:
                    answer = sandbox._serve_control(self.command, self.path, raw)
                else:
                    answer = sandbox._serve_api(self.command, self.path, self.headers, raw)
        except Exception:
            _logger.exception("crux sandbox: error answering %s %s", self.command, self.path)
            answer = _json_answer(500, {"detail": "Sandbox internal error."}, close=True)
        self._write(answer)
        path = self.path.replace(sandbox.token, "***") if sandbox.token else self.path
        _logger.debug(
            "crux sandbox: %s %s %s -> %s%s (%.1f ms)",
            self.client_address[0],
            self.command,
            path,
            answer.status if answer.status is not None else "connection closed",
            " [control]" if control else "",
            (time.monotonic() - started) * 1000,
        )

    def _write(self, answer):
        """Send the answer, or shut the connection down when its status is None."""
        if answer.status is None:
            self.close_connection = True
            _shutdown(self.connection)
            return
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if answer.close or self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)
        if answer.close:
            self.close_connection = True


# --------------------------------------------------------------------------- command line


def main(argv=None):
    """Command line entry point: serve until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(description="Local fake of the CRUXconnect TIMP API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default="sandbox-token")
    parser.add_argument(
        "--delay", type=float, default=0.0, help="seconds to wait before every API answer"
    )
    parser.add_argument(
        "--seed",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="create the demo orders of SEED_ORDERS (default: yes)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(message)s")
    _logger.setLevel(logging.DEBUG)

    sandbox = CruxSandbox(
        host=args.host, port=args.port, token=args.token, seed=args.seed, delay=args.delay
    ).start()
    print(f"Crux sandbox listening on {sandbox.url}", flush=True)
    print(f"Token: {sandbox.token}", flush=True)
    for order in sandbox.orders():
        print(f"Order {order['order_uuid']}  po {order['po_number']}", flush=True)
        for line in order["line_items"]:
            print(
                f"    line {line['line_item_uuid']}  sku {line['sku_id']}  qty {line['quantity']}",
                flush=True,
            )
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_args: stopping.set())
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        sandbox.stop()
        print("Crux sandbox stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
