"""A customer's own pages: its circuits, their status and latest traffic, one circuit.

A customer user sees exactly one customer, the one its account is bound to; staff may open
any customer's pages (the NOC overview links to them), so an account manager sees what the
customer sees. Every read goes through the viewer-scoped queries (store.queries), and an id
outside the viewer's scope is 404 like an id that does not exist.

A circuit's status is read from its two end ports' latest `if_oper_up` figures: up when both
ends are up, down when either is down, unknown when an end has no recent poll. (The alarm
pipeline will later give the authoritative state, with maintenance and root cause.)
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from portal.security import current_viewer, login_required
from store.queries import (
    circuit_status,
    circuits_for,
    get_circuit,
    get_customer,
    latest_port_oper,
    latest_port_traffic,
)

blueprint = Blueprint("customer", __name__)


@blueprint.get("/my/")
@login_required
def home() -> ResponseReturnValue:
    viewer = current_viewer()
    if viewer.customer_id is None:
        return redirect(url_for("noc.inventory"))
    return redirect(url_for("customer.circuits", customer_id=viewer.customer_id))


@blueprint.get("/customers/<int:customer_id>/")
@login_required
def circuits(customer_id: int) -> str:
    viewer = current_viewer()
    database = current_app.extensions["keyline.database"]
    with database.pool.connection() as conn:
        customer = get_customer(conn, viewer, customer_id)
        if customer is None:
            abort(404)
        rows = circuits_for(conn, viewer, customer_id=customer.id)
        ports = [port for c in rows for port in (c.a_port_id, c.z_port_id)]
        traffic = latest_port_traffic(conn, ports)
        oper = latest_port_oper(conn, ports)
    status = {c.id: circuit_status(c, oper) for c in rows}
    return render_template("customer/circuits.html", customer=customer, circuits=rows,
                           traffic=traffic, status=status)


@blueprint.get("/circuits/<int:circuit_id>")
@login_required
def circuit(circuit_id: int) -> str:
    viewer = current_viewer()
    database = current_app.extensions["keyline.database"]
    with database.pool.connection() as conn:
        row = get_circuit(conn, viewer, circuit_id)
        if row is None:
            abort(404)
        ports = [row.a_port_id, row.z_port_id]
        traffic = latest_port_traffic(conn, ports)
        oper = latest_port_oper(conn, ports)
    return render_template("customer/circuit.html", circuit=row, traffic=traffic,
                           status=circuit_status(row, oper))
