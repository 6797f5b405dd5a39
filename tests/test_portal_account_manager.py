"""An account manager's menu: every page it offers exists and shows only the customers they
manage (config/example: am.zhao manages xinhe, am.chen hsbank and jinlu). Counts too: the
overview's figures are their customers' objects, never the network's."""

from __future__ import annotations

import re

from store.users import set_password
from tests.test_portal_access import PASSWORD, Portal, logged_in, portal  # noqa: F401

MANAGER = "am.zhao"


def menu_links(page: str) -> list[str]:
    nav = re.search(r"<nav>(.*?)</nav>", page, re.S)
    assert nav, "no menu"
    return re.findall(r'<a href="([^"]+)"', nav.group(1))


def xinhe(portal: Portal) -> tuple[int, int, int, int, int]:  # noqa: F811
    """xinhe's id and its numbers of sites, devices, circuits and VPNs."""
    with portal.database.pool.connection() as conn:
        customer_id = conn.execute("SELECT id FROM customers WHERE key = 'xinhe'").fetchone()[0]
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM sites WHERE customer_id = %(c)s),"
            " (SELECT count(*) FROM devices d JOIN sites s ON s.id = d.site_id"
            "   WHERE s.customer_id = %(c)s),"
            " (SELECT count(*) FROM circuits WHERE customer_id = %(c)s),"
            " (SELECT count(*) FROM vpns WHERE customer_id = %(c)s)", {"c": customer_id}
        ).fetchone()
    return (customer_id, *counts)


def test_every_menu_link_exists_and_shows_only_their_customers(portal: Portal):  # noqa: F811
    with portal.database.pool.connection() as conn:
        set_password(conn, MANAGER, PASSWORD)
    customer_id, sites, devices, circuits, vpns = xinhe(portal)
    client = logged_in(portal.app, MANAGER)
    home = client.get("/", follow_redirects=True)
    assert home.status_code == 200
    links = menu_links(home.get_data(as_text=True))
    assert {"/noc/", "/noc/topology", "/alarms", "/maintenance"} <= set(links), links
    others = portal.a.words | portal.b.words  # hsbank's and jinlu's names and keys
    for link in links:
        response = client.get(link)
        assert response.status_code == 200, link
        page = response.get_data(as_text=True)
        assert not sorted(word for word in others if word in page), link

    overview = client.get("/noc/").get_data(as_text=True)
    shown = {kind: int(count) for kind, count in re.findall(
        r'<span class="count" data-kind="(\w+)">(\d+)</span>', overview)}
    assert shown == {"customers": 1, "sites": sites, "devices": devices,
                     "circuits": circuits, "vpns": vpns}
    polled = re.search(r'<p class="polling">(.*?)</p>', overview, re.S)
    assert polled and sum(map(int, re.findall(r">(\d+) ", polled.group(1)))) == devices

    topology = client.get("/noc/topology").get_data(as_text=True)
    assert 'value="global"' not in topology
    options = re.findall(r'<option value="(\w+)/(\d+)" data-room="customer:(\d+)"', topology)
    assert options and {room for _, _, room in options} == {str(customer_id)}
    assert ("customers", str(customer_id), str(customer_id)) in options
    assert client.get(f"/api/v1/topology/customers/{customer_id}").status_code == 200
    assert client.get("/api/v1/topology/global").status_code == 404
    assert client.get(f"/api/v1/topology/customers/{portal.a.customer_id}").status_code == 404


def test_operators_keep_the_whole_network(portal: Portal):  # noqa: F811
    client = logged_in(portal.app, "noc.wang")
    topology = client.get("/noc/topology").get_data(as_text=True)
    select = topology.split("<select")[1].split("</select>")[0]
    assert 'value="global"' in select and "data-room=" not in select
    overview = client.get("/noc/").get_data(as_text=True)
    assert 'data-kind="links"' in overview and 'data-kind="ports"' in overview
