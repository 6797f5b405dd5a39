"""The portal's Flask application factory.

The portal reads the store through the shared queries (store.queries) and writes only through
the domain packages' own functions. This first slice shows the inventory: customers and
their circuits, served from whatever PostgreSQL the store runs on. Accounts, the NOC
topology, the alarm console, the customer pages and the REST API grow here as the engines
land (see the navigation: the entries not built yet are shown as such, not as dead links).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, render_template

from config.settings import Settings, session_secret
from keyline import __version__
from store.database import Database
from store.queries import (
    device_reachability,
    inventory_counts,
    latest_port_traffic,
    list_circuits,
    list_customers,
)

SERVICE_TYPE_LABELS = {
    "leased_line": "Leased line",
    "mpls_l3vpn": "MPLS L3VPN",
    "e_line": "E-Line",
    "internet_access": "Internet access",
}


def format_bps(rate_bps: int | float | None) -> str:
    """1000000000 -> '1 Gbit/s': how a NOC reads a bandwidth."""
    if rate_bps is None:
        return "-"
    for unit, size in (("Tbit/s", 10**12), ("Gbit/s", 10**9), ("Mbit/s", 10**6), ("kbit/s", 10**3)):
        if rate_bps >= size:
            value = rate_bps / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{rate_bps:.0f} bit/s"


def create_app(settings: Settings, database: Database) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=session_secret(settings).get_secret_value(),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        JSON_SORT_KEYS=False,
    )
    app.jinja_env.filters["bps"] = format_bps
    app.jinja_env.globals.update(version=__version__, service_labels=SERVICE_TYPE_LABELS)

    @app.get("/")
    def index() -> str:
        with database.pool.connection() as conn:
            customers = list_customers(conn)
            circuits = list_circuits(conn)
            counts = inventory_counts(conn)
            traffic = latest_port_traffic(conn, [circuit.a_port_id for circuit in circuits])
            reachability = device_reachability(conn)
        by_customer: dict[str, list[Any]] = {}
        for circuit in circuits:
            by_customer.setdefault(circuit.customer_key, []).append(circuit)
        return render_template(
            "index.html", customers=customers, circuits_by_customer=by_customer, counts=counts,
            traffic=traffic, reachability=reachability,
        )

    @app.get("/healthz")
    def healthz() -> Any:
        with database.pool.connection() as conn:
            conn.execute("SELECT 1")
        return jsonify(status="ok", version=__version__)

    @app.errorhandler(404)
    def not_found(error: Exception) -> tuple[str, int]:
        return render_template("error.html", code=404, message="Not found"), 404

    @app.errorhandler(500)
    def server_error(error: Exception) -> tuple[str, int]:
        return render_template("error.html", code=500, message="Internal error"), 500

    return app
