"""The operator's pages: the inventory overview NOC staff start from.

Staff only (noc, engineer, account_manager, admin; see store.queries.STAFF_ROLES): a customer
user asking for these pages gets 404. The overview shows every customer with its circuits,
each circuit's latest traffic at its A end (store.queries.latest_port_traffic) and how many
devices the collectors last found reachable (store.queries.device_reachability). Until the
live Socket.IO pages arrive, the figures refresh with the page.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template

from portal.security import current_viewer, staff_required
from store.queries import (
    circuits_for,
    customers_for,
    device_reachability,
    inventory_counts,
    latest_port_traffic,
)

blueprint = Blueprint("noc", __name__, url_prefix="/noc")


@blueprint.get("/")
@staff_required
def inventory() -> str:
    viewer = current_viewer()
    database = current_app.extensions["keyline.database"]
    with database.pool.connection() as conn:
        customers = customers_for(conn, viewer)
        circuits = circuits_for(conn, viewer)
        counts = inventory_counts(conn)
        traffic = latest_port_traffic(conn, [circuit.a_port_id for circuit in circuits])
        reachability = device_reachability(conn)
    by_customer: dict[str, list[Any]] = {}
    for circuit in circuits:
        by_customer.setdefault(circuit.customer_key, []).append(circuit)
    return render_template(
        "noc/inventory.html", customers=customers, circuits_by_customer=by_customer,
        counts=counts, traffic=traffic, reachability=reachability,
    )
