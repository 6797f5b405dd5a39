"""PDF rendering of SLA reports (sla/render.py): Chinese names survive, nothing is fetched.

A page with a Chinese customer name is rendered by the real WeasyPrint and read back with
poppler: `pdftotext` must return the Chinese text exactly, `pdffonts` must show the CJK
family embedded (Pango drawing empty boxes from a font without the glyphs would still map
them to the right text), and page 1 is made a PNG with `pdftoppm` (kept in the test's
tmp_path, printed with -s) that must not be blank. Rendering must never reach the network:
an image on a loopback HTTP server that counts requests, and one on example.com while a
Python audit hook records every socket connection and name lookup, are refused by the URL
fetcher (its log says so) with no request made; a data: image and a portal static file are
fetched, a file elsewhere is refused. Without any CJK font, HTML with Chinese text is an
error that says how to install one. Tests skip with the reason where poppler-utils or a CJK
font is missing (`python3 dev.py test` as root installs them).
"""

from __future__ import annotations

import base64
import io
import logging
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.request import urlopen

import pytest

from sla import render

CHINESE = "华盛银行 月度SLA报告 可用率 99.95%"
LATIN = "Monthly SLA report, Huasheng Bank: availability 99.95 %"

needs_poppler = pytest.mark.skipif(
    shutil.which("pdftotext") is None or shutil.which("pdftoppm") is None,
    reason="pdftotext/pdftoppm missing: Debian package poppler-utils "
    "(python3 dev.py test as root installs it)",
)
needs_cjk_font = pytest.mark.skipif(
    render.cjk_font_available() is None,
    reason="no CJK font in fontconfig: Debian package fonts-wqy-zenhei "
    "(python3 dev.py test as root installs it)",
)

REFUSED = "PDF rendering refused to fetch"


def page(body: str) -> str:
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        "<style>@page { size: A4; margin: 15mm } h1 { font-size: 20pt }</style>"
        f"</head><body>{body}</body></html>"
    )


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage() for record in caplog.records
        if record.name == "sla.render" and REFUSED in record.getMessage()
    ]


@needs_poppler
@needs_cjk_font
def test_chinese_text_comes_back_as_text_and_is_drawn_with_a_cjk_font(tmp_path: Path) -> None:
    pdf = render.pdf_of_html(page(f"<h1>{CHINESE}</h1><p>{LATIN}</p>"))
    assert pdf.startswith(b"%PDF-")
    pdf_path = tmp_path / "report.pdf"
    pdf_path.write_bytes(pdf)

    text = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(pdf_path), "-"],
        capture_output=True, text=True, check=True,
    ).stdout
    lines = [line.strip() for line in text.splitlines()]
    assert CHINESE in lines
    assert LATIN in lines

    fonts = subprocess.run(
        ["pdffonts", str(pdf_path)], capture_output=True, text=True, check=True
    ).stdout
    # pdffonts names an embedded subset "ABCDEF+Family-Style", spaces as dashes
    cjk = render.cjk_font_available()
    assert cjk is not None
    assert cjk.replace(" ", "-") in fonts, fonts

    subprocess.run(
        ["pdftoppm", "-r", "60", "-png", "-f", "1", "-l", "1", "-singlefile",
         str(pdf_path), str(tmp_path / "page1")],
        check=True,
    )
    png = tmp_path / "page1.png"
    print(f"page 1 of the PDF as an image: {png}")
    Image = pytest.importorskip("PIL.Image", reason="Pillow (a WeasyPrint dependency)")
    with Image.open(png) as image:
        gray = image.convert("L")
        width, height = gray.size
        # A4 (210 x 297 mm) at 60 dpi: 496 x 701 pixels, give or take pdftoppm's rounding
        assert abs(width - 496) <= 1 and abs(height - 701) <= 1, (width, height)
        dark = sum(gray.histogram()[:128])
        # the two lines sit in the page's top quarter; below them is white paper
        top = gray.crop((0, 0, width, height // 4))
        top_dark = sum(top.histogram()[:128])
    assert top_dark > 200, "page 1 shows no text"
    assert dark == top_dark, "ink below the two lines of text"


def test_no_url_but_data_and_static_files_is_fetched(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        loopback = f"http://127.0.0.1:{server.server_port}/x.png"
        # the receiver counts: a fetch by anyone is seen
        with pytest.raises(OSError):
            urlopen(loopback + "?probe", timeout=10)
        assert requests == ["/x.png?probe"]

        outside = tmp_path / "secret.png"
        outside.write_bytes(_one_pixel_png())
        data_url = "data:image/png;base64," + base64.b64encode(_one_pixel_png()).decode()
        html = page(
            f'<img src="{loopback}"><img src="http://example.com/x.png">'
            f'<img src="https://example.com/y.png"><img src="{outside.as_uri()}">'
            f'<img src="{data_url}"><link rel="stylesheet" href="keyline.css"><p>{LATIN}</p>'
        )
        with _sockets_opened() as opened, caplog.at_level(logging.WARNING, "sla.render"):
            pdf = render.pdf_of_html(html, base_url=render.STATIC_DIR.as_uri() + "/")
    finally:
        server.shutdown()
        server.server_close()

    assert pdf.startswith(b"%PDF-")
    assert requests == ["/x.png?probe"], "the renderer made an HTTP request"
    assert [event for event in opened if event[0] != "urllib.Request"] == [], (
        "the renderer opened a socket or looked a name up"
    )
    # what it did open: the data: image and the static style sheet, through urllib's
    # DataHandler and FileHandler
    fetched = {url for event, url in opened if event == "urllib.Request"}
    assert fetched == {data_url, (render.STATIC_DIR / "keyline.css").as_uri()}
    refused = refusals(caplog)
    assert any(loopback in message for message in refused)
    assert any("http://example.com/x.png" in message for message in refused)
    assert any("https://example.com/y.png" in message for message in refused)
    assert any(outside.as_uri() in message for message in refused)
    assert not any("data:image" in message or "keyline.css" in message for message in refused)
    assert len(refused) == 4, refused


def test_static_files_are_fetched_and_nothing_else_on_disk() -> None:
    static_css = render.STATIC_DIR / "keyline.css"
    assert render._refusal(static_css.as_uri()) is None
    assert render._refusal("data:text/plain,ok") is None
    assert render._refusal("file:///etc/passwd") is not None
    # out of the folder through ".." or another host
    assert render._refusal(static_css.as_uri().replace("/static/", "/static/../../")) is not None
    assert render._refusal("file://example.com" + static_css.as_posix()) is not None
    assert render._refusal("ftp://127.0.0.1/x.png") is not None


def test_without_a_cjk_font_chinese_html_is_an_error_that_says_how_to_install_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dejavu = Path("/usr/share/fonts/truetype/dejavu")
    if shutil.which("fc-list") is None or not dejavu.is_dir():
        pytest.skip("needs fc-list and fonts-dejavu-core to make a fontconfig without CJK")
    # a fontconfig that knows only the DejaVu fonts (fc-list reads FONTCONFIG_FILE); no text
    # is laid out under it, so the renderer's own fontconfig in this process is not touched
    config = tmp_path / "fonts.conf"
    config.write_text(
        '<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
        f"<dir>{dejavu}</dir><cachedir>{tmp_path / 'cache'}</cachedir></fontconfig>"
    )
    monkeypatch.setenv("FONTCONFIG_FILE", str(config))
    render.cjk_font_available.cache_clear()
    try:
        assert render.cjk_font_available() is None
        with pytest.raises(render.RenderError) as raised:
            render.pdf_of_html(page(f"<h1>{CHINESE}</h1>"))
    finally:
        monkeypatch.undo()
        render.cjk_font_available.cache_clear()
    message = str(raised.value)
    assert "empty boxes" in message
    assert "python3 dev.py run" in message
    assert "fonts-wqy-zenhei" in message


def test_cjk_text_is_recognised() -> None:
    assert render.has_cjk_text("客户: 华盛银行")
    assert render.has_cjk_text("（全角）")
    assert not render.has_cjk_text(LATIN + " é ü ß — €")


def _one_pixel_png() -> bytes:
    Image = pytest.importorskip("PIL.Image", reason="Pillow (a WeasyPrint dependency)")
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1), (200, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


_recording: list[list[tuple[str, object]]] = []


def _audit(event: str, args: tuple[object, ...]) -> None:
    if _recording and event in ("socket.connect", "socket.getaddrinfo", "urllib.Request"):
        _recording[-1].append((event, args[1] if event == "socket.connect" else args[0]))


_hook_installed = False


class _sockets_opened:
    """Records every socket connection, name lookup and urllib request made in the block
    (a Python audit hook: it cannot be removed, so it records only while a block is open)."""

    def __enter__(self) -> list[tuple[str, object]]:
        global _hook_installed
        if not _hook_installed:
            sys.addaudithook(_audit)
            _hook_installed = True
        _recording.append([])
        return _recording[-1]

    def __exit__(self, *exc: object) -> None:
        _recording.pop()
