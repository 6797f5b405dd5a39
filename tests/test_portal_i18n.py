"""Languages: every text the portal marks has its Chinese translation, the catalog compiles
from the .po alone, and the pages follow the user's choice or the browser's language."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from portal.i18n import TRANSLATIONS, compile_catalogs
from tests.test_portal_access import (  # noqa: F401
    USER_A,
    Portal,
    csrf_token,
    logged_in,
    portal,
)

PORTAL = Path(__file__).resolve().parent.parent / "portal"


def marked_texts() -> set[str]:
    method_map = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            PORTAL, method_map, keywords=keywords):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def test_every_marked_text_is_translated():
    with (TRANSLATIONS / "zh_CN" / "LC_MESSAGES" / "messages.po").open("rb") as po_file:
        catalog = read_po(po_file)
    translated = {}
    for message in catalog:
        if message.id:
            key = message.id[0] if isinstance(message.id, tuple) else message.id
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            translated[key] = all(strings)
    texts = marked_texts()
    assert len(texts) > 40
    missing = sorted(text for text in texts if not translated.get(text))
    assert not missing, f"add these to the zh_CN catalog (see portal/i18n.py): {missing}"


def test_no_compiled_catalog_in_the_checkout(tmp_path: Path):
    assert not list(TRANSLATIONS.rglob("*.mo"))
    compiled = compile_catalogs(tmp_path)
    assert (compiled / "zh_Hans_CN" / "LC_MESSAGES" / "messages.mo").stat().st_size > 1000
    assert compile_catalogs(tmp_path) == compiled  # unchanged .po: compiled once


def test_accept_language_sets_the_default(portal: Portal):  # noqa: F811
    client = portal.app.test_client()
    chinese = client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert '<html lang="zh-CN">' in chinese.get_data(as_text=True)
    assert "登录" in chinese.get_data(as_text=True)
    english = client.get("/login", headers={"Accept-Language": "en-GB,en;q=0.8"})
    assert "Log in" in english.get_data(as_text=True)


def test_chosen_language_beats_the_browser_and_covers_every_page(portal: Portal):  # noqa: F811
    pages = ((USER_A, "/my/", "我的电路"), ("noc.wang", "/noc/", "资源清单"))
    for user, page_path, chinese in pages:
        client = logged_in(portal.app, user)
        page = client.get(page_path, follow_redirects=True).get_data(as_text=True)
        switched = client.post("/language", data={"lang": "zh_CN", "next": page_path,
                                                  "csrf_token": csrf_token(page)})
        assert switched.headers["Location"] == page_path
        page = client.get(page_path, follow_redirects=True,
                          headers={"Accept-Language": "en"}).get_data(as_text=True)
        assert chinese in page and "退出登录" in page
        assert "Log out" not in page and "Traffic at A end" not in page
        missing = client.get("/circuits/999999999").get_data(as_text=True)
        assert "未找到" in missing
    anonymous = portal.app.test_client()
    page = anonymous.get("/login").get_data(as_text=True)
    anonymous.post("/language", data={"lang": "zh_CN", "csrf_token": csrf_token(page)})
    assert "密码" in anonymous.get("/login").get_data(as_text=True)
