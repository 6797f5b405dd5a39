"""The portal's languages: English and Simplified Chinese (zh-CN), chosen per user.

Texts are marked in the templates with `{{ _("...") }}` and in Python with `gettext` /
`lazy_gettext` (Flask-Babel). The translations live as gettext catalogs in
portal/translations/<locale>/LC_MESSAGES/messages.po, the only form kept in the repository;
the binary .mo files that gettext reads are compiled from them when the app starts
(`compile_catalogs`, with Babel's own API, into <data dir>/cache/, a folder only Keyline
writes to), so a clean checkout works and a .po edit is picked up by a restart.

The language is the one the user picked with the switch in the top bar (kept in the session
cookie, so it also holds before login), else the browser's Accept-Language, else English.

To add texts: mark them, then refresh the catalog and translate the new entries:

    .venv/bin/pybabel extract -F portal/babel.cfg -k lazy_gettext -o /tmp/messages.pot portal alarms
    .venv/bin/pybabel update -i /tmp/messages.pot -d portal/translations -l zh_CN

(tests/test_portal_i18n.py fails when a marked text has no Chinese translation). `alarms` is
there for the alarm pipeline's sentences (alarms/texts.py, marked `N_`; rendered per viewer by
portal/alarms_views.py `alarm_text`; tests/test_portal_alarm_texts.py checks them).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import request, session

TRANSLATIONS = Path(__file__).resolve().parent / "translations"

# Locale code (as Babel names it) -> the name the switch shows, in that language.
LANGUAGES = {"en": "English", "zh_CN": "中文"}
DEFAULT_LANGUAGE = "en"


def compile_catalogs(cache_dir: Path, source: Path = TRANSLATIONS) -> Path:
    """Compile every messages.po under `source` into a folder of `cache_dir` named after
    their contents; return that folder (a BABEL_TRANSLATION_DIRECTORIES entry)."""
    catalogs = sorted(source.glob("*/LC_MESSAGES/messages.po"))
    digest = hashlib.sha256()
    for path in catalogs:
        digest.update(str(path.relative_to(source)).encode())
        digest.update(path.read_bytes())
    digest.update(b"layout 2")  # bump when the layout of the compiled folder changes
    target = cache_dir / f"translations-{digest.hexdigest()[:16]}"
    for path in catalogs:
        # Flask-Babel looks a catalog up under Babel's full name of the locale: "zh_CN" is
        # parsed as zh_Hans_CN (Simplified script), so that is where its .mo goes.
        code = str(Locale.parse(path.parent.parent.name))
        mo_path = target / code / "LC_MESSAGES" / "messages.mo"
        if mo_path.exists():
            continue
        mo_path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("rb") as po_file:
            catalog = read_po(po_file, locale=path.parent.parent.name)
        # Write beside it, then rename: two processes starting at once never see half a file.
        handle, partial = tempfile.mkstemp(dir=mo_path.parent, suffix=".partial")
        with os.fdopen(handle, "wb") as mo_file:
            write_mo(mo_file, catalog)
        os.replace(partial, mo_path)
    return target


def select_locale() -> str:
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return chosen
    best = request.accept_languages.best_match(["en", "zh-CN", "zh"])
    return "zh_CN" if best in ("zh-CN", "zh") else DEFAULT_LANGUAGE


def html_lang(locale: str) -> str:
    """The `lang` attribute for a Babel locale code: zh_CN -> zh-CN."""
    return locale.replace("_", "-")
