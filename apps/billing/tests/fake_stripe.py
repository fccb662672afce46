"""A small stateful fake of Stripe's HTTP API on loopback, for tests and benchmarks.

The real stripe library (and dj-stripe through it) talks HTTP to it: only what lies outside the
project is faked. It keeps objects in memory, honours Idempotency-Key like Stripe, records every
request, and answers unknown routes with Stripe's 404 error shape so a gap shows up as a failure.
Helpers build subscriptions/invoices in Stripe's current shape (billing period on the items,
the invoice's subscription under ``parent``) and sign webhook payloads with Stripe's scheme.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from apps.core.testing.loopback_http import LoopbackHttpServer

_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_fake{next(_ids):06d}"


def _assign(target: dict, path: list[str], value: str) -> None:
    """Put ``value`` at ``a[b][0][c]`` (Stripe's form encoding) into nested dicts/lists."""
    key, rest = path[0], path[1:]
    if not rest:
        target[key] = value
        return
    nxt = target.setdefault(key, {})
    _assign(nxt, rest, value)


def _listify(value: Any) -> Any:
    if isinstance(value, dict):
        if value and all(k.isdigit() for k in value):
            return [_listify(value[k]) for k in sorted(value, key=int)]
        return {k: _listify(v) for k, v in value.items()}
    return value


def parse_form(text: str) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        _assign(data, parts, value)
    return _listify(data)


def sign(payload: str, secret: str, *, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header value: ``t=<unix>,v1=<HMAC-SHA256 of "t.payload">``."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class FakeStripe(LoopbackHttpServer):
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, dict]] = {
            kind: {}
            for kind in (
                "customers",
                "products",
                "prices",
                "subscriptions",
                "invoices",
                "checkout_sessions",
                "portal_sessions",
                "webhook_endpoints",
            )
        }
        self.requests: list[tuple[str, str, dict]] = []
        self.unknown: list[str] = []
        self._idempotent: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.fail_next: int | None = None  # an HTTP status to answer the next request with
        self._serve(self._handler_class())

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _ in self.requests if m == method and p == path)

    # --- objects in Stripe's shape --------------------------------------------------------

    def _base(self, kind: str, prefix: str, **fields: Any) -> dict:
        obj = {"id": new_id(prefix), "livemode": False, "created": int(time.time()), "metadata": {}, **fields}
        self.objects[kind][obj["id"]] = obj
        return obj

    def price_by_lookup_key(self, lookup_key: str) -> dict:
        return next(p for p in self.objects["prices"].values() if p.get("lookup_key") == lookup_key and p["active"])

    def subscription(
        self, *, customer: str, lookup_key: str, status: str = "active", quantity: int = 1, **extra: Any
    ) -> dict:
        """Create (or with ``id=`` replace) a subscription; returns it."""
        price = self.price_by_lookup_key(lookup_key)
        now = int(time.time())
        sub_id = extra.pop("id", None) or new_id("sub")
        item: dict[str, Any] = {
            "id": new_id("si"),
            "object": "subscription_item",
            "created": now,
            "metadata": {},
            "price": dict(price),
            "quantity": quantity,
            "subscription": sub_id,
            "current_period_start": now,
            "current_period_end": now + 30 * 86400,
            "tax_rates": [],
        }
        sub = {
            "id": sub_id,
            "object": "subscription",
            "livemode": False,
            "created": extra.pop("created", now),
            "metadata": {},
            "customer": customer,
            "status": status,
            "cancel_at_period_end": False,
            "currency": price["currency"],
            "start_date": now,
            "collection_method": "charge_automatically",
            "items": {
                "object": "list",
                "data": [item],
                "has_more": False,
                "url": f"/v1/subscription_items?subscription={sub_id}",
            },
            "quantity": quantity,
            "default_tax_rates": [],
            "latest_invoice": None,
            **extra,
        }
        self.objects["subscriptions"][sub_id] = sub
        return sub

    def set_status(self, subscription_id: str, status: str) -> dict:
        sub = self.objects["subscriptions"][subscription_id]
        sub["status"] = status
        if status == "canceled":
            sub["ended_at"] = sub["canceled_at"] = int(time.time())
        return sub

    def invoice(self, *, customer: str, subscription: str, status: str = "open", amount_due: int = 1500) -> dict:
        return self._base(
            "invoices",
            "in",
            object="invoice",
            customer=customer,
            status=status,
            amount_due=amount_due,
            amount_paid=amount_due if status == "paid" else 0,
            amount_remaining=0 if status == "paid" else amount_due,
            subtotal=amount_due,
            total=amount_due,
            currency="eur",
            attempt_count=1,
            attempted=True,
            next_payment_attempt=int(time.time()) + 3 * 86400 if status != "paid" else None,
            hosted_invoice_url="https://invoice.stripe.test/i/fake",
            billing_reason="subscription_cycle",
            collection_method="charge_automatically",
            lines={"object": "list", "data": [], "has_more": False, "url": "/v1/invoices/lines"},
            parent={
                "type": "subscription_details",
                "subscription_details": {"subscription": subscription, "metadata": {}},
            },
            period_start=int(time.time()),
            period_end=int(time.time()),
        )

    def event(self, event_type: str, obj: dict, *, event_id: str | None = None) -> dict:
        """An event snapshot of ``obj`` (a copy: later changes to the object don't alter it)."""
        return {
            "id": event_id or new_id("evt"),
            "object": "event",
            "api_version": "2026-08-26.dahlia",
            "created": int(time.time()),
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
            "data": {"object": json.loads(json.dumps(obj))},
        }

    # --- routes -----------------------------------------------------------------------------

    def _error(self, status: int, message: str, *, code: str = "resource_missing", param: str = "id") -> tuple:
        return status, {"error": {"type": "invalid_request_error", "code": code, "message": message, "param": param}}

    def _get(self, kind: str, obj_id: str) -> tuple:
        obj = self.objects[kind].get(obj_id)
        return (200, obj) if obj else self._error(404, f"No such {kind[:-1]}: '{obj_id}'")

    def route(self, method: str, path: str, params: dict) -> tuple[int, dict]:
        parts = path.strip("/").split("/")[1:]  # drop "v1"
        if method == "GET" and parts == ["account"]:
            return 200, {"id": "acct_fake", "object": "account", "type": "standard", "settings": {}, "metadata": {}}
        if parts[:2] == ["checkout", "sessions"]:
            parts = ["checkout_sessions", *parts[2:]]
        if parts[:2] == ["billing_portal", "sessions"]:
            parts = ["portal_sessions", *parts[2:]]
        kind = parts[0] if parts else ""
        if kind not in self.objects:
            self.unknown.append(f"{method} {path}")
            return self._error(404, f"Unrecognized request URL ({method}: {path})", code="", param="")
        if len(parts) == 3 and method == "GET" and parts[2] in ("features", "lines"):
            return 200, {"object": "list", "data": [], "has_more": False, "url": path}
        if len(parts) == 2:
            if method == "GET":
                return self._get(kind, parts[1])
            status, obj = self._get(kind, parts[1])
            if status != 200:
                return status, obj
            params.pop("expand", None)
            for key, value in params.items():
                obj[key] = {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value
            return 200, obj
        if method == "GET":
            items = list(self.objects[kind].values())
            if "lookup_keys" in params:
                items = [p for p in items if p.get("lookup_key") in params["lookup_keys"]]
            if params.get("active") in ("true", "false"):
                items = [p for p in items if p.get("active") == (params["active"] == "true")]
            return 200, {"object": "list", "data": items, "has_more": False, "url": path}
        return 200, self._create(kind, params)

    def _create(self, kind: str, params: dict) -> dict:
        params.pop("expand", None)
        if kind == "customers":
            return self._base(
                kind,
                "cus",
                object="customer",
                email=params.get("email"),
                name=params.get("name"),
                metadata=params.get("metadata", {}),
                invoice_settings={},
                currency=None,
                balance=0,
                delinquent=False,
                preferred_locales=[],
            )
        if kind == "products":
            obj = self._base(
                kind,
                "prod",
                object="product",
                name=params["name"],
                active=True,
                type="service",
                metadata=params.get("metadata", {}),
            )
            if params.get("id"):
                del self.objects[kind][obj["id"]]
                obj["id"] = params["id"]
                self.objects[kind][obj["id"]] = obj
            return obj
        if kind == "prices":
            if params.get("transfer_lookup_key") == "true":
                for other in self.objects["prices"].values():
                    if other.get("lookup_key") == params.get("lookup_key"):
                        other["lookup_key"] = None
            recurring = params.get("recurring", {})
            return self._base(
                kind,
                "price",
                object="price",
                active=True,
                product=params["product"],
                unit_amount=int(params["unit_amount"]),
                unit_amount_decimal=params["unit_amount"],
                currency=params["currency"],
                lookup_key=params.get("lookup_key"),
                nickname=params.get("nickname"),
                billing_scheme="per_unit",
                type="recurring",
                tax_behavior="unspecified",
                recurring={
                    "interval": recurring.get("interval", "month"),
                    "interval_count": 1,
                    "usage_type": recurring.get("usage_type", "licensed"),
                    "aggregate_usage": None,
                    "trial_period_days": None,
                },
                metadata=params.get("metadata", {}),
            )
        if kind == "checkout_sessions":
            obj = self._base(
                kind,
                "cs",
                object="checkout.session",
                mode=params.get("mode"),
                customer=params.get("customer"),
                client_reference_id=params.get("client_reference_id"),
                line_items_requested=params.get("line_items"),
                success_url=params.get("success_url"),
                cancel_url=params.get("cancel_url"),
                metadata=params.get("metadata", {}),
                subscription_data=params.get("subscription_data"),
                status="open",
                payment_status="unpaid",
                subscription=None,
                currency="eur",
            )
            obj["url"] = f"https://checkout.stripe.test/c/pay/{obj['id']}"
            return obj
        if kind == "portal_sessions":
            obj = self._base(
                kind,
                "bps",
                object="billing_portal.session",
                customer=params.get("customer"),
                return_url=params.get("return_url"),
            )
            obj["url"] = f"https://billing.stripe.test/p/session/{obj['id']}"
            return obj
        if kind == "webhook_endpoints":
            return self._base(
                kind,
                "we",
                object="webhook_endpoint",
                url=params["url"],
                status="enabled",
                enabled_events=params.get("enabled_events", []),
                api_version=None,
                application=None,
                secret=f"whsec_{new_id('secret')}",
                metadata=params.get("metadata", {}),
            )
        self.unknown.append(f"POST /v1/{kind}")
        return self._error(404, f"cannot create {kind}")[1]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                params = parse_form(body if method == "POST" else split.query)
                with fake.lock:
                    fake.requests.append((method, split.path, params))
                    if fake.fail_next is not None:
                        status, payload = fake.fail_next, {"error": {"type": "api_error", "message": "down"}}
                        fake.fail_next = None
                    else:
                        key = self.headers.get("Idempotency-Key") if method == "POST" else None
                        cached = fake._idempotent.get(key) if key else None
                        if cached is not None:
                            status, payload = 200, cached
                        else:
                            status, payload = fake.route(method, split.path, params)
                            if key and status == 200:
                                fake._idempotent[key] = payload
                    data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", new_id("req"))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

        return Handler
