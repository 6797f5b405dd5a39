"""The client's address behind a reverse proxy, believed only from the proxies we trust.

Behind a reverse proxy every request comes from the proxy's address; the client's is in the
X-Forwarded-For header the proxy adds (and whether it spoke HTTPS in X-Forwarded-Proto).
Anyone can send those headers, so they are believed only when the request comes from one of
the `trusted_proxies` (addresses or networks in the settings): then werkzeug's ProxyFix
takes the client's address `trusted_proxy_hops` entries from the right of X-Forwarded-For.
A request from any other address is taken at its own address, and its X-Forwarded-*
headers are removed so that nothing further in can read them by mistake. The login
protection's per-address limit (portal/security.py) and the sessions' recorded address
read the result, `request.remote_addr`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from typing import Any

from werkzeug.middleware.proxy_fix import ProxyFix

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

FORWARDED_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
                     "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_PREFIX", "HTTP_FORWARDED")


def is_trusted(address: str | None, networks: Iterable[Network]) -> bool:
    """Is `address` (a REMOTE_ADDR, IPv4-mapped IPv6 included) in one of `networks`?"""
    try:
        parsed = ipaddress.ip_address((address or "").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return any(parsed.version == network.version and parsed in network for network in networks)


class TrustedProxies:
    """WSGI middleware: ProxyFix for requests from `networks`, none for the others."""

    def __init__(self, app: Any, networks: Iterable[Network], hops: int = 1) -> None:
        self.app = app
        self.networks = [ipaddress.ip_network(n) if isinstance(n, str) else n for n in networks]
        self.fixed = ProxyFix(app, x_for=hops, x_proto=hops)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        if self.networks and is_trusted(environ.get("REMOTE_ADDR"), self.networks):
            return self.fixed(environ, start_response)
        for header in FORWARDED_HEADERS:
            environ.pop(header, None)
        return self.app(environ, start_response)
