"""Hostile inventories, refused the same way by the command line and the admin page.

- Look-alike and terminal-rewriting text: control and format characters (Unicode Cc, Cf:
  NUL, ESC, the zero-width space, the right-to-left override) in identifiers, names and
  descriptions are problems with file and line; `keyline import --check` no longer calls
  such an inventory valid.
- Shapes that once crashed or flooded: YAML nested 5,000 deep (a RecursionError), and an
  alias flood of 300 KB that expands to billions of values (a 27.8 MB page): each is one
  problem at its line.
- An import that retires more than `inventory_max_retire_share` of the inventory, or all of
  it (an empty file), stores nothing until confirmed: `keyline import --allow-retire`, or
  the admin page's confirmation step (its Chromium check is in
  tests/test_portal_admin_browser.py).

The command line runs as a user runs it (`python -m keyline`, tests/test_cli.py's helper);
the pages with Flask's test client on the fixtures of tests/test_portal_access.py.
"""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pytest

from keyline.wiring import EXAMPLE_INVENTORY
from tests.test_cli import keyline
from tests.test_inventory_import import snapshot
from tests.test_portal_access import Portal, logged_in, portal  # noqa: F401
from tests.test_portal_admin import count, example_files, upload

INVISIBLE = {  # as written in a YAML double-quoted string -> as reported
    "\\0": "U+0000", "\\e": "U+001B", "\\u200b": "U+200B (ZERO WIDTH SPACE)",
    "\\u202e": "U+202E (RIGHT-TO-LEFT OVERRIDE)",
}


def invisible_customers() -> str:
    """customers.yaml of the example with one new customer per invisible character: in its
    id (look-alike of "nanfeng"), and in an existing customer's name."""
    text = (EXAMPLE_INVENTORY / "customers.yaml").read_text()
    extra = "".join(f'  - id: "nanfeng{char}{index}"\n    name: "Nan{char}feng"\n'
                    for index, char in enumerate(INVISIBLE))
    return text.replace("\nsites:", "\n" + extra + "\nsites:", 1)


def deep_yaml(levels: int = 5000) -> str:
    return "customers:\n  - id: deep\n    name: " + "[" * levels + "]" * levels + "\n"


def alias_flood(size_bytes: int = 300_000) -> str:
    """A "billion laughs" of about `size_bytes`: ten aliases of ten aliases ... of a long
    text, 10^9 texts once expanded."""
    base = "x" * (size_bytes // 10)
    lines = ["laughs:", f'  - &a0 ["{base}"]']
    for level in range(1, 10):
        lines.append(f"  - &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    lines.append("customers: *a9")
    return "\n".join(lines) + "\n"


def inventory_folder(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "inventory"
    shutil.copytree(EXAMPLE_INVENTORY, folder)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


# --- characters --------------------------------------------------------------------------


def test_cli_check_refuses_invisible_characters_with_file_and_line(tmp_path: Path):
    folder = inventory_folder(tmp_path, **{"customers.yaml": invisible_customers()})
    result = keyline("import", "--check", str(folder))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Inventory valid" not in result.stdout and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    for reported in INVISIBLE.values():
        for field in ("id", "name"):
            assert any(re.match(rf".*customers\.yaml:\d+: customers\[\d+\]\.{field}: {field}"
                                rf" contains the invisible character {re.escape(reported)}",
                                line) for line in lines), (reported, field, result.stderr)
    assert "\x00" not in result.stderr and "\x1b" not in result.stderr
    # a description may span lines: line breaks and tabs are not refused
    fine = inventory_folder(tmp_path / "fine", **{"customers.yaml": (
        EXAMPLE_INVENTORY / "customers.yaml").read_text().replace(
        "\nsites:", '\n  - id: nanfeng\n    name: "Nan\\tfeng\\nManufacturing"\n\nsites:', 1)})
    assert keyline("import", "--check", str(fine)).returncode == 0


def test_admin_page_refuses_invisible_characters_with_file_and_line(
        portal: Portal):  # noqa: F811
    client = logged_in(portal.app, "admin")
    before = count(portal, "SELECT count(*) FROM customers")
    response = upload(client, example_files(**{"customers.yaml": invisible_customers()}))
    assert response.status_code == 422
    page = html.unescape(response.get_data(as_text=True))
    for reported in INVISIBLE.values():
        assert f"contains the invisible character {reported}" in page
    assert re.search(r'<td class="file">customers.yaml</td>\s*<td class="line num">\d+</td>',
                     page)
    assert "\x1b" not in page and "\u202e" not in page
    assert count(portal, "SELECT count(*) FROM customers") == before


# --- shapes ------------------------------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    (deep_yaml(), "nested more than 64 levels deep"),
    (alias_flood(), "aliases (*name) stand for more than 100,000 values"),
])
def test_cli_refuses_deep_yaml_and_alias_floods(tmp_path: Path, text: str, message: str):
    folder = inventory_folder(tmp_path, **{"hostile.yaml": text})
    result = keyline("import", "--check", str(folder))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr
    assert re.search(rf"hostile\.yaml:\d+: \(yaml\): .*{re.escape(message)}", result.stderr)
    assert len(result.stderr) < 10_000  # one problem, not one per expanded value


def test_admin_page_refuses_deep_yaml_and_alias_floods(portal: Portal):  # noqa: F811
    client = logged_in(portal.app, "admin")
    for text, message in ((deep_yaml(), "nested more than 64 levels deep"),
                          (alias_flood(), "stand for more than 100,000 values")):
        assert len(text) < 400_000
        response = upload(client, example_files(**{"hostile.yaml": text}))
        assert response.status_code == 422
        page = html.unescape(response.get_data(as_text=True))
        assert message in page
        assert len(page) < 100_000  # not 27.8 MB


def test_anchors_and_aliases_in_reason_still_work(tmp_path: Path):
    """A few aliases (one port list shared by two devices) are fine."""
    text = (EXAMPLE_INVENTORY / "customers.yaml").read_text().replace(
        "\nsites:", "\n  - &nanfeng\n    id: nanfeng\n    name: Nanfeng\n"
        "  - {<<: *nanfeng, id: nanfeng2}\n\nsites:", 1)
    folder = inventory_folder(tmp_path, **{"customers.yaml": text})
    result = keyline("import", "--check", str(folder))
    assert result.returncode == 0, result.stderr


# --- retiring much needs a confirmation ----------------------------------------------------


def test_cli_import_retiring_much_needs_allow_retire(db, tmp_path: Path):
    assert keyline("import", str(EXAMPLE_INVENTORY), url=db.url).returncode == 0
    with db.pool.connection() as conn:
        before = snapshot(conn)
        active = conn.execute("SELECT count(*) FROM customers WHERE retired_at IS NULL"
                              ).fetchone()[0]
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    refused = keyline("import", str(empty), url=db.url)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
    assert "This import would retire:" in refused.stderr
    assert re.search(r"^  circuits \(\d+\): .*HSB-L3VPN-0001", refused.stderr, re.M)
    assert "100% of the inventory" in refused.stderr and "--allow-retire" in refused.stderr
    with db.pool.connection() as conn:
        assert snapshot(conn) == before  # nothing stored

    # --allow-retire goes ahead
    allowed = keyline("import", "--allow-retire", str(empty), url=db.url)
    assert allowed.returncode == 0, allowed.stderr
    assert "retired" in allowed.stdout
    with db.pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM customers WHERE retired_at IS NULL"
                            ).fetchone()[0] == 0
    assert active > 0


def test_cli_retire_share_is_a_setting(db, tmp_path: Path):
    assert keyline("import", str(EXAMPLE_INVENTORY), url=db.url).returncode == 0
    users = (EXAMPLE_INVENTORY / "users.yaml").read_text()
    one_less = re.sub(r"  - login: eng\.liu\n(    .*\n)+", "", users, count=1)
    assert one_less != users
    folder = inventory_folder(tmp_path, **{"users.yaml": one_less})
    strict = keyline("import", str(folder), url=db.url,
                     env={"KEYLINE_INVENTORY_MAX_RETIRE_SHARE": "0"})
    assert strict.returncode == 3, strict.stderr
    assert "users (1): eng.liu" in strict.stderr
    assert keyline("import", str(folder), url=db.url).returncode == 0  # 1 of 200: fine


def test_admin_page_asks_before_retiring_much_and_stores_nothing_until_confirmed(
        portal: Portal):  # noqa: F811
    client = logged_in(portal.app, "admin")
    with portal.database.pool.connection() as conn:
        before = snapshot(conn)
    # keep the admin (an import may never retire it), drop everything else
    users = (EXAMPLE_INVENTORY / "users.yaml").read_text()
    admin_only = "users:\n" + re.search(r"  - login: admin\n(    .*\n)+", users).group(0)
    checked = upload(client, {"users.yaml": admin_only.encode()}, action="check")
    assert checked.status_code == 200
    assert 'id="retire-notice"' in checked.get_data(as_text=True)

    asked = upload(client, {"users.yaml": admin_only.encode()})
    assert asked.status_code == 409
    page = asked.get_data(as_text=True)
    assert 'id="retire-confirm"' in page and "Nothing has been stored yet." in page
    assert re.search(r'<tr data-kind="circuits">.*?HSB-L3VPN-0001', page, re.S)
    with portal.database.pool.connection() as conn:
        assert snapshot(conn) == before
    pending = re.search(r'name="pending" value="([^"]+)"', page).group(1)
    retired = re.search(r'name="retired" value="([^"]+)"', page).group(1)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    # another admin's session, or a forged token, cannot confirm it
    with portal.database.pool.connection() as conn:
        from store.users import add_local_user
        add_local_user(conn, "admin.two", "admin", "another admin password 2")
        before = snapshot(conn)
    other = portal.app.test_client()
    from tests.test_portal_access import login
    assert login(other, "admin.two", "another admin password 2").status_code == 302
    other_token = re.search(r'name="csrf_token" value="([^"]+)"',
                            other.get("/admin/inventory").get_data(as_text=True)).group(1)
    stolen = other.post("/admin/inventory", data={"csrf_token": other_token,
                                                  "action": "confirm", "pending": pending,
                                                  "retired": retired})
    assert stolen.status_code == 409
    forged = client.post("/admin/inventory", data={"csrf_token": token, "action": "confirm",
                                                   "pending": "A" * 24, "retired": retired})
    assert forged.status_code == 409
    with portal.database.pool.connection() as conn:
        assert snapshot(conn) == before

    confirmed = client.post("/admin/inventory", data={"csrf_token": token,
                                                      "action": "confirm",
                                                      "pending": pending, "retired": retired})
    assert confirmed.status_code == 200, confirmed.get_data(as_text=True)
    assert ">Imported<" in confirmed.get_data(as_text=True)
    assert count(portal, "SELECT count(*) FROM circuits WHERE retired_at IS NULL") == 0
    assert count(portal, "SELECT count(*) FROM users WHERE key = 'admin'"
                         " AND retired_at IS NULL") == 1
    # the upload was used once: confirming again finds nothing waiting
    again = client.post("/admin/inventory", data={"csrf_token": token, "action": "confirm",
                                                  "pending": pending, "retired": retired})
    assert again.status_code == 409


def test_admin_page_cancel_and_a_changed_store(portal: Portal):  # noqa: F811
    client = logged_in(portal.app, "admin")
    users = (EXAMPLE_INVENTORY / "users.yaml").read_text()
    admin_only = "users:\n" + re.search(r"  - login: admin\n(    .*\n)+", users).group(0)
    page = upload(client, {"users.yaml": admin_only.encode()}).get_data(as_text=True)
    fields = {name: re.search(rf'name="{name}" value="([^"]+)"', page).group(1)
              for name in ("pending", "retired", "csrf_token")}
    # the store changes meanwhile: a customer is added, which the import would retire too
    with portal.database.pool.connection() as conn:
        conn.execute("INSERT INTO customers (key, name, spec, source) VALUES"
                     " ('late', 'Late Co', '{}', 'test')")
    changed = client.post("/admin/inventory", data={**fields, "action": "confirm"})
    assert changed.status_code == 409
    text = changed.get_data(as_text=True)
    assert "The inventory changed since the confirmation was asked" in text
    assert "late" in text
    assert count(portal, "SELECT count(*) FROM circuits WHERE retired_at IS NULL") > 0
    fields["pending"] = re.search(r'name="pending" value="([^"]+)"', text).group(1)
    cancelled = client.post("/admin/inventory", data={**fields, "action": "cancel"},
                            follow_redirects=True)
    assert "Import cancelled: nothing was stored." in cancelled.get_data(as_text=True)
    assert count(portal, "SELECT count(*) FROM circuits WHERE retired_at IS NULL") > 0
