"""The Acme shop API of ``tests/data/shop_openapi.yaml``, served on 127.0.0.1 for tests.

``ShopHandler`` answers the spec's operations from small in-memory tables, requires
``Authorization: Bearer <TOKEN>`` and records every request it got in ``ShopHandler.seen``
(method, path, headers, body) so tests can check what reached the server.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

SPEC = Path(__file__).parent / "data" / "shop_openapi.yaml"
TOKEN = "s3cret-shop-token-4242"

ORDERS: dict[str, dict[str, Any]] = {
    "A1001": {"id": "A1001", "status": "shipped", "total": {"amount": 1299.0, "currency": "EUR"},
              "placedAt": "2026-11-28T10:15:00Z", "estimatedDelivery": "2026-12-08",
              "lines": [{"sku": "LT-14-PRO", "quantity": 1}]},
    "A1002": {"id": "A1002", "status": "pending", "total": {"amount": 49.9, "currency": "EUR"},
              "placedAt": "2026-12-03T08:00:00Z", "estimatedDelivery": None,
              "lines": [{"sku": "AC-USBC-2M", "quantity": 2}]},
}
PRODUCTS: list[dict[str, Any]] = [
    {"sku": "LT-14-PRO", "name": "Aero 14 Pro laptop", "category": "laptops",
     "price": {"amount": 1299.0, "currency": "EUR"}, "stock": 7},
    {"sku": "PH-6-LITE", "name": "Nova 6 Lite phone", "category": "phones",
     "price": {"amount": 329.0, "currency": "EUR"}, "stock": 0},
    {"sku": "AC-USBC-2M", "name": "USB-C cable 2 m", "category": "accessories",
     "price": {"amount": 12.5, "currency": "EUR"}, "stock": 140},
] + [{"sku": f"AC-CASE-{i:03d}", "name": f"Phone case model {i}", "category": "accessories",
      "price": {"amount": 9.0 + i, "currency": "EUR"}, "stock": i} for i in range(60)]


class ShopHandler(BaseHTTPRequestHandler):
    """The stub server (a fresh ``seen`` list per test: call :meth:`reset`)."""

    seen: ClassVar[list[dict[str, Any]]] = []

    @classmethod
    def reset(cls) -> None:
        cls.seen = []

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        ShopHandler.seen.append({"method": method, "path": url.path, "query": query,
                                 "headers": {k.lower(): v for k, v in self.headers.items()},
                                 "body": json.loads(raw) if raw else None})
        if url.path.startswith("/v1/redirect"):
            self.send_response(302)
            self.send_header("Location", query.get("to", "/"))
            self.end_headers()
            return
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._reply(401, {"code": "unauthorized", "message": "missing or wrong token"})
        parts = url.path.strip("/").split("/")
        if parts[:1] != ["v1"]:
            return self._reply(404, {"code": "not_found", "message": url.path})
        parts = parts[1:]
        if method == "GET" and parts == ["orders"]:
            rows = [o for o in ORDERS.values() if query.get("status") in (None, o["status"])]
            return self._reply(200, rows[: int(query.get("limit", 20))])
        if method == "GET" and len(parts) == 2 and parts[0] == "orders":
            order = ORDERS.get(parts[1])
            return self._reply(200, order) if order else self._reply(404, {"code": "not_found",
                                                                            "message": f"no order {parts[1]}"})
        if method == "POST" and len(parts) == 3 and parts[0] == "orders" and parts[2] == "cancel":
            order = ORDERS.get(parts[1])
            if order is None:
                return self._reply(404, {"code": "not_found", "message": f"no order {parts[1]}"})
            if order["status"] in ("shipped", "delivered"):
                return self._reply(409, {"code": "already_shipped", "message": "shipped orders cannot be cancelled"})
            return self._reply(200, {"id": parts[1], "status": "cancelled"})
        if method == "GET" and parts == ["products"]:
            words = (query.get("q") or "").lower().split()
            rows = [p for p in PRODUCTS
                    if all(w in p["name"].lower() for w in words)
                    and query.get("category") in (None, p["category"])
                    and p["price"]["amount"] <= float(query.get("maxPrice", 1e9))]
            return self._reply(200, rows[: int(query.get("limit", 100))])
        if method == "GET" and len(parts) == 2 and parts[0] == "products":
            product = next((p for p in PRODUCTS if p["sku"] == parts[1]), None)
            return self._reply(200, product) if product else self._reply(404, {"code": "not_found",
                                                                                "message": parts[1]})
        return self._reply(404, {"code": "not_found", "message": url.path})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")
