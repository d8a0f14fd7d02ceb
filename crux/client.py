"""HTTP client for the CRUXconnect TIMP API.

Plain Python on purpose: no ORM, no Odoo import. Built from plain values, it
keeps one ``requests.Session`` (keep-alive) and sends every call through
:meth:`CruxClient._request`. Errors are typed: each class says whether trying
again later can help (``retryable``), so callers decide between a retry and a
person fixing data or configuration.
"""

import json
import logging
import re
import time
from urllib.parse import quote

import requests

_logger = logging.getLogger(__name__)

SANDBOX_URL = "https://api-sandbox.cruxconnect.com"
PRODUCTION_URL = "https://api.cruxconnect.com"

TRACKING_PATH = "/timp/orders/tracking/{order_uuid}/"
ORDER_PATH = "/timp/orders/{order_uuid}/"

DEFAULT_TIMEOUT = 30.0
MAX_MESSAGE = 300
UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)


class CruxError(Exception):
    """Base class of every error the client raises.

    ``retryable`` tells whether the same request may succeed later without a
    person changing anything; ``outcome_unknown`` whether Crux may have
    processed the request although no answer came back.
    """

    retryable = False
    outcome_unknown = False

    def __init__(self, message, status=None, retry_after=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


class CruxAuthError(CruxError):
    """401/403: the token or the account is wrong; a person must fix the configuration."""


class CruxOrderNotFoundError(CruxError):
    """404: Crux knows no such order (or the URL is wrong)."""


class CruxOrgTypeError(CruxError):
    """409: the token belongs to an organisation of the wrong type (e.g. a retailer)."""


class CruxDataError(CruxError):
    """400/415/422 or data refused before sending: Crux rejects what was sent."""


class CruxTransientError(CruxError):
    """429, 5xx, timeouts and connection errors: trying again later can help."""

    retryable = True

    def __init__(self, message, status=None, retry_after=None, outcome_unknown=True):
        super().__init__(message, status=status, retry_after=retry_after)
        self.outcome_unknown = outcome_unknown


class CruxNoPackageError(CruxError):
    """Crux answered 2xx without a package_uuid: it may or may not have stored it.

    Retrying can help, once Crux's order detail was checked for the package.
    """

    retryable = True
    outcome_unknown = True


STATUS_ERRORS = {
    400: CruxDataError,
    401: CruxAuthError,
    403: CruxAuthError,
    404: CruxOrderNotFoundError,
    409: CruxOrgTypeError,
    415: CruxDataError,
    422: CruxDataError,
}


def _shorten(text, limit=MAX_MESSAGE):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_message_from_body(body):
    """Return a short readable message from an error body of any shape.

    Crux documents no error format: the body may be a JSON object (field ->
    messages), a JSON list, an HTML page or nothing at all.
    """
    if not body or not body.strip():
        return ""
    try:
        data = json.loads(body)
    except ValueError:
        # HTML or plain text: keep the visible text only.
        text = re.sub(r"(?is)<(script|style).*?</\1>", " ", body)
        text = re.sub(r"(?s)<[^>]+>", " ", text)
        return _shorten(text)
    return _shorten(_flatten(data))


def _flatten(data):
    if isinstance(data, dict):
        parts = []
        for key, value in data.items():
            text = _flatten(value)
            parts.append(
                text
                if key in ("detail", "message", "error", "non_field_errors")
                else f"{key}: {text}"
            )
        return "; ".join(parts)
    if isinstance(data, list):
        return "; ".join(_flatten(item) for item in data)
    return str(data)


def parse_retry_after(value):
    """Seconds to wait from a Retry-After header (delta-seconds form), or None."""
    if not value:
        return None
    if value.strip().replace(".", "", 1).isdigit():
        return max(0.0, float(value))
    try:
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def check_order_uuid(order_uuid):
    """Return the order uuid URL-quoted, or raise CruxDataError when it is not a uuid."""
    if not isinstance(order_uuid, str) or not UUID_RE.match(order_uuid.strip()):
        raise CruxDataError(f"{order_uuid!r} is not a Crux order uuid.")
    return quote(order_uuid.strip(), safe="")


class CruxClient:
    """Talks to one Crux environment with one token.

    :param base_url: e.g. ``https://api.cruxconnect.com`` (no path)
    :param token: the supplier's API token, sent as ``Authorization: Token …``
    :param timeout: seconds for connecting and for reading each answer
    :param on_response: optional callable receiving one dict per HTTP exchange
        (method, url, status, duration, request and response bodies, error);
        headers are never passed to it, so the token cannot leak into a log.
    """

    def __init__(self, base_url, token, timeout=DEFAULT_TIMEOUT, on_response=None):
        if not base_url:
            raise CruxDataError("No Crux API URL is configured.")
        if not token:
            raise CruxAuthError("No Crux API token is configured.")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.on_response = on_response
        self._token = token
        self.session = requests.Session()
        self.session.headers.update(
            {
                "Accept": "application/json",
                "Content-Type": "application/json; charset=utf-8",
            }
        )

    def __repr__(self):
        return f"<CruxClient {self.base_url} timeout={self.timeout}>"

    def close(self):
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # Public API ---------------------------------------------------------

    def add_tracking(self, order_uuid, payload):
        """Post one package's tracking to an order; return Crux's package_uuid.

        :raises CruxError: a subclass telling whether a retry can help.
        """
        path = TRACKING_PATH.format(order_uuid=check_order_uuid(order_uuid))
        data = self._request("POST", path, payload)
        package_uuid = data.get("package_uuid") if isinstance(data, dict) else None
        if not package_uuid or not isinstance(package_uuid, str):
            raise CruxNoPackageError(
                "Crux accepted the tracking but returned no package_uuid.", status=200
            )
        return package_uuid

    def get_order(self, order_uuid):
        """Return the order detail (line items and their tracking) as a dict."""
        path = ORDER_PATH.format(order_uuid=check_order_uuid(order_uuid))
        data = self._request("GET", path)
        if not isinstance(data, dict):
            raise CruxTransientError(
                "Crux answered the order detail with an unreadable body.", outcome_unknown=False
            )
        return data

    # Transport ----------------------------------------------------------

    def _request(self, method, path, payload=None):
        url = self.base_url + path
        body = None if payload is None else json.dumps(payload)
        headers = {"Authorization": f"Token {self._token}"}
        record = {
            "method": method,
            "url": url,
            "request_body": body,
            "status": None,
            "response_body": None,
            "error": None,
        }
        start = time.monotonic()
        try:
            response = self.session.request(
                method, url, data=body, headers=headers, timeout=self.timeout
            )
            # Read the whole body inside the try: a connection dropped while
            # reading is as unknown an outcome as one dropped before the answer.
            text = response.text
        except requests.Timeout as exc:
            record["error"] = "timeout"
            # A connect timeout means nothing went out; a read timeout may
            # come after Crux stored the package.
            raise CruxTransientError(
                f"Crux did not answer within {self.timeout:g} s ({method} {path}).",
                outcome_unknown=method == "POST" and not isinstance(exc, requests.ConnectTimeout),
            ) from self._scrub(exc)
        except requests.RequestException as exc:
            record["error"] = type(exc).__name__
            sent = not isinstance(exc, requests.ConnectionError) or _maybe_sent(exc)
            raise CruxTransientError(
                f"Could not reach Crux at {self.base_url} ({type(exc).__name__}).",
                outcome_unknown=sent and method == "POST",
            ) from self._scrub(exc)
        finally:
            record["duration"] = time.monotonic() - start
            if record["error"] and self.on_response:
                self.on_response(dict(record))
        record["status"] = response.status_code
        record["response_body"] = text
        if self.on_response:
            self.on_response(dict(record))
        return self._parse(response, text, method, path)

    def _parse(self, response, text, method, path):
        status = response.status_code
        if 200 <= status < 300:
            if not text.strip():
                return {}
            try:
                return json.loads(text)
            except ValueError:
                if method == "POST":
                    raise CruxNoPackageError(
                        f"Crux answered {status} with a body that is not JSON.", status=status
                    ) from None
                raise CruxTransientError(
                    f"Crux answered {status} with a body that is not JSON.",
                    status=status,
                    outcome_unknown=False,
                ) from None
        detail = error_message_from_body(text)
        message = f"Crux answered {status}" + (f": {detail}" if detail else ".")
        if status == 429 or status >= 500:
            raise CruxTransientError(
                message,
                status=status,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                outcome_unknown=status >= 500 and method == "POST",
            )
        error_class = STATUS_ERRORS.get(status, CruxDataError)
        raise error_class(message, status=status)

    def _scrub(self, exc):
        """Drop the request (and with it the Authorization header) from a requests error."""
        exc.request = None
        exc.response = None
        return exc


def _maybe_sent(exc):
    """Whether a connection error may have happened after the request went out."""
    text = repr(exc)
    before = (
        "NewConnectionError",
        "Connection refused",
        "Name or service not known",
        "Failed to establish",
        "ConnectTimeout",
        "nodename nor servname",
    )
    return not any(marker in text for marker in before)
