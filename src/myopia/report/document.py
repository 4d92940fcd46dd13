"""The frame of every HTML page myopia writes: one self-contained document.

Style and script come from ``report/static/`` and are inlined, data is inlined as JSON, and
images as data URIs (see :mod:`myopia.report.html`), so a page opens from disk with no
server, no network and no file beside it.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

STATIC = Path(__file__).with_name("static")


def static_text(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def inline_json(obj) -> str:
    """JSON safe inside a <script> element (no '</' can close it; strict: no NaN)."""
    return json.dumps(obj, allow_nan=False, separators=(",", ":")).replace("</", "<\\/")


def page(title: str, body: str, *, css: tuple[str, ...] = ("base.css",), script: str = "") -> str:
    """A complete self-contained HTML document (phone-width viewport, print-friendly CSS)."""
    style = "\n".join(static_text(c) for c in css)
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>\n{style}\n</style></head>\n"
        f"<body>\n{body}\n{script}\n</body></html>\n"
    )
