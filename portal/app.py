"""The portal's Flask application factory.

The portal reads the store through the shared, viewer-scoped queries (store.queries) and
writes only through the domain packages' own functions. `create_app(settings, database)`
assembles it:

- accounts (portal/security.py, portal/auth.py): login with the store's Argon2 users,
  sessions kept in the store that end (logout, password change, retirement, an admin, the
  `accounts` timeouts) and whose random secret is all the signed cookie says of them
  (HttpOnly, SameSite=Lax, Secure when the `secure_cookies` setting is on,
  KEYLINE_SECURE_COOKIES=1: set it whenever the portal is served over HTTPS), CSRF tokens on
  every form (Flask-WTF's CSRFProtect: every POST, PUT, PATCH and DELETE without a valid
  token is refused with 400), login protection with counters in the store, roles; the
  client's address from X-Forwarded-For only behind `trusted_proxies` (portal/proxies.py);
- one blueprint per audience: portal/noc.py (the operator's inventory overview),
  portal/customer.py (a customer's circuits), the live topology (portal/noc.py, with
  Socket.IO rooms per audience fed by the store's events: portal/live.py),
  portal/api.py (REST, /api/v1, with its OpenAPI document), portal/vendor.py (front-end
  packages from node_modules), portal/admin.py (the admin's inventory import, users and
  topology reconciliation), portal/alarms_views.py (the alarm console, engineers' actions,
  maintenance windows; their REST API is portal/alarms_api.py, nested in the API's),
  portal/devices.py (a device's page: its verdict, health and ports), portal/tickets_views.py
  (the ticket queue, a customer's tickets and its reports, a ticket's page);
- languages (portal/i18n.py): English and Simplified Chinese, switched in the top bar;
- bad input (portal/params.py): ids beyond bigint, times at the calendar's edges, NUL in any
  text, JSON nested too deep are 400 (or 404) naming the field, never 500; every error under
  /api/ is answered as JSON `{"error": ..., "field": ...}`, 413 included, pages as HTML.

- SLA figures and reports (portal/sla_views.py; REST in portal/sla_api.py): a customer's
  reports, the account managers' and the NOC's dashboards, marking customer-caused time.

The navigation lists what comes next as "coming" (`COMING`), not as dead links, until those
blueprints land.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, g, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import Babel, gettext, lazy_gettext
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from config.settings import Settings, session_secret
from keyline import __version__
from portal.i18n import LANGUAGES, compile_catalogs, html_lang, select_locale
from portal.params import BadParameter, BoundedJSONProvider, IdConverter, refuse_bad_text
from portal.proxies import TrustedProxies
from portal.security import load_viewer
from store.database import Database

SERVICE_TYPE_LABELS = {
    "leased_line": lazy_gettext("Leased line"),
    "mpls_l3vpn": lazy_gettext("MPLS L3VPN"),
    "e_line": lazy_gettext("E-Line"),
    "internet_access": lazy_gettext("Internet access"),
}

STATUS_LABELS = {
    "reachable": lazy_gettext("reachable"),
    "unreachable": lazy_gettext("unreachable"),
    "not polled": lazy_gettext("not polled"),
    "up": lazy_gettext("up"),
    "down": lazy_gettext("down"),
    "unknown": lazy_gettext("unknown"),
}

# A circuit's service state (alarms/service_state.py, docs/service-state.md), as every page
# that shows one names it: the customer's pages, the topology, the alarm console.
SERVICE_STATE_LABELS = {
    "up": lazy_gettext("up"),
    "down": lazy_gettext("down"),
    "degraded": lazy_gettext("degraded"),
    "unknown": lazy_gettext("unknown"),
    "maintenance": lazy_gettext("maintenance"),
}


def service_state_label(state: str, underlying: str | None = None) -> str:
    """A service state in the viewer's language; maintenance with what lies beneath it:
    "maintenance (down beneath)"."""
    if state == "maintenance" and underlying:
        return gettext("maintenance (%(underlying)s beneath)",
                       underlying=str(SERVICE_STATE_LABELS.get(underlying, underlying)))
    return str(SERVICE_STATE_LABELS.get(state, state))


# What the top bar will link to once built; shown greyed out until then.
COMING: tuple[tuple[Any, Any], ...] = ()


def format_bps(rate_bps: int | float | None) -> str:
    """1000000000 -> '1 Gbit/s': how a NOC reads a bandwidth."""
    if rate_bps is None:
        return "-"
    for unit, size in (("Tbit/s", 10**12), ("Gbit/s", 10**9), ("Mbit/s", 10**6), ("kbit/s", 10**3)):
        if rate_bps >= size:
            value = rate_bps / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{rate_bps:.0f} bit/s"


MAX_REQUEST_BYTES = 40 * 2**20


def create_app(settings: Settings, database: Database, *,
               async_mode: str = "threading") -> Flask:
    """The portal's app. `async_mode` is Flask-SocketIO's: "threading" under Werkzeug's
    server (the tests, `keyline --debug serve`), "gevent" in the portal server process
    (keyline/portal_process.py, portal/server.py)."""
    app = Flask(__name__)
    # Before any route is added: `<int:...>` ids are bigint-sized, JSON nesting is bounded.
    app.url_map.converters["int"] = IdConverter
    app.json = BoundedJSONProvider(app)
    app.config.update(
        SECRET_KEY=session_secret(settings).get_secret_value(),
        SESSION_COOKIE_NAME="keyline_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        # The largest request: an inventory upload (portal/admin.py checks the files inside);
        # anything bigger is refused before it is read.
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        # The cookie's own lifetime; the stored session's timeouts are what end a session.
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=settings.accounts.session_max_age_s),
        # The cookie is written only when its content changes (login, a language, the CSRF
        # token's first use): a response to a request the browser sent earlier with an older
        # cookie (a favicon, a script still loading as the user logs in) must not put that
        # older cookie back and take away the page's CSRF token or the new login.
        SESSION_REFRESH_EACH_REQUEST=False,
        # The CSRF token is bound to the session, not to a clock: a login page left open
        # over lunch still works.
        WTF_CSRF_TIME_LIMIT=None,
        JSON_SORT_KEYS=False,
        BABEL_DEFAULT_LOCALE="en",
        BABEL_TRANSLATION_DIRECTORIES=str(compile_catalogs(Path(settings.data_dir) / "cache")),
    )
    app.extensions["keyline.database"] = database
    app.extensions["keyline.settings"] = settings  # portal/admin.py: the import's guard
    app.extensions["keyline.accounts"] = settings.accounts  # portal/security.py
    CSRFProtect(app)
    Babel(app, locale_selector=select_locale)

    app.jinja_env.filters["bps"] = format_bps
    app.jinja_env.globals.update(
        version=__version__, service_labels=SERVICE_TYPE_LABELS, status_labels=STATUS_LABELS,
        service_state_labels=SERVICE_STATE_LABELS, service_state_label=service_state_label,
        coming=COMING, languages=LANGUAGES,
        # The live pages' Socket.IO transports (base.html; settings server.websocket_only).
        socket_transports=("websocket" if settings.server.websocket_only
                           else "websocket,polling"),
    )

    @app.context_processor
    def page_context() -> dict[str, Any]:
        locale = select_locale()  # our code ("zh_CN"), not Babel's parse of it ("zh_Hans_CN")
        return {"viewer": g.get("viewer"), "locale": locale, "html_lang": html_lang(locale)}

    app.before_request(refuse_bad_text)  # first: NUL reaches neither the store nor a view
    app.before_request(load_viewer)

    @app.after_request
    def security_headers(response: Any) -> Any:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        )
        if g.get("viewer") is not None:
            headers["Cache-Control"] = "no-store"  # a customer's data stays out of caches
        headers.add("Vary", "Cookie")
        return response

    from portal import api, auth, customer, noc, vendor

    app.register_blueprint(auth.blueprint)
    app.register_blueprint(noc.blueprint)
    app.register_blueprint(customer.blueprint)
    app.register_blueprint(api.blueprint)
    app.register_blueprint(vendor.blueprint)
    from portal import admin

    app.register_blueprint(admin.blueprint)
    from portal import alarms_views

    app.register_blueprint(alarms_views.blueprint)  # /alarms, /maintenance
    from portal import devices

    app.register_blueprint(devices.blueprint)  # /devices/<id>: health, verdict, ports
    from portal import configs

    app.register_blueprint(configs.blueprint)  # /devices/<id>/configs: versions, diffs
    from portal import device_cli

    app.register_blueprint(device_cli.blueprint)  # /devices/<id>/cli: accept a host key
    from portal import tickets_views

    app.register_blueprint(tickets_views.blueprint)  # /tickets: queue, reports, a ticket
    from portal import sla_views

    app.register_blueprint(sla_views.blueprint)  # /sla: reports, dashboards, marks

    from portal.live import init_live

    # Socket.IO on the app; `start_live(app)` follows the events
    init_live(app, database, async_mode=async_mode,
              websocket_only=settings.server.websocket_only, live=settings.live)
    from portal.live_tickets import init_live_tickets

    init_live_tickets(app)  # "ticket" messages to the rooms, from the bridge's consumer

    @app.get("/")
    def index() -> ResponseReturnValue:
        """Each audience's home: the NOC overview for staff, the circuits for a customer."""
        viewer = g.get("viewer")
        if viewer is None:
            return redirect(url_for("auth.login"))
        if viewer.is_staff:
            return redirect(url_for("noc.inventory"))
        return redirect(url_for("customer.home"))

    @app.get("/healthz")
    def healthz() -> Any:
        with database.pool.connection() as conn:
            conn.execute("SELECT 1")
        return jsonify(status="ok", version=__version__)

    def error_page(code: int, message: str) -> tuple[Any, int]:
        if request.path.startswith("/api/"):
            return jsonify(error=message, field=None), code
        return render_template("error.html", code=code, message=message), code

    @app.errorhandler(CSRFError)
    def csrf_failed(error: CSRFError) -> tuple[Any, int]:
        return error_page(400, str(lazy_gettext(
            "The form expired or did not come from this site. Reload the page and try again.")))

    @app.errorhandler(400)
    def bad_request(error: Exception) -> tuple[Any, int]:
        return error_page(400, str(lazy_gettext("Bad request")))

    @app.errorhandler(401)
    def unauthorized(error: Exception) -> tuple[Any, int]:
        return error_page(401, str(lazy_gettext("Authentication required")))

    @app.errorhandler(404)
    def not_found(error: Exception) -> tuple[Any, int]:
        return error_page(404, str(lazy_gettext("Not found")))

    @app.errorhandler(405)
    def not_allowed(error: Exception) -> tuple[Any, int]:
        return error_page(405, str(lazy_gettext("Method not allowed")))

    @app.errorhandler(BadParameter)
    def bad_parameter(error: BadParameter) -> tuple[Any, int]:
        if request.path.startswith("/api/"):
            return jsonify(error=error.message, field=error.field), error.status
        return render_template("error.html", code=error.status, message=error.message
                               ), error.status

    @app.errorhandler(413)
    def too_large(error: Exception) -> tuple[Any, int]:
        return error_page(413, str(lazy_gettext(
            "The request is too large: at most %(mib)d MiB.", mib=MAX_REQUEST_BYTES // 2**20)))

    @app.errorhandler(HTTPException)
    def other_http_error(error: HTTPException) -> Any:
        """Every other HTTP error (429, 415...): JSON under /api/ like the ones above."""
        if error.code is None or not request.path.startswith("/api/"):
            return error
        return jsonify(error=error.description or error.name, field=None), error.code

    @app.errorhandler(500)
    def server_error(error: Exception) -> tuple[Any, int]:
        return error_page(500, str(lazy_gettext("Internal error")))

    # Outermost, around Socket.IO's middleware too: every request's client address.
    app.wsgi_app = TrustedProxies(  # type: ignore[method-assign]
        app.wsgi_app, settings.trusted_proxies, settings.trusted_proxy_hops)
    return app
