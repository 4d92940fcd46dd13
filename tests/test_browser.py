"""report.html and explain.html in a real browser: headless Chromium driven over the DevTools
protocol (tests/chromium.py). No console errors, every token drawn, a click opens the token's
detail, colours centred at zero gap, phone width without sideways scrolling, a PDF prints.
Skipped when no Chromium is installed (Debian: apt-get install -y chromium)."""

from __future__ import annotations

import json

import pytest
import torch
from chromium import Chromium, find_chromium
from tiny_runs import tiny_text_gap

from myopia.cli import main

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="no Chromium installed (apt-get install -y chromium)")


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """A tiny gap with an explain page inside it and its report."""
    root = tmp_path_factory.mktemp("browser")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MYOPIA_CACHE", str(root / "cache"))
        torch.set_num_threads(1)
        gap, _ = tiny_text_gap(root, steps=10)
        out = gap / "explain"
        assert main(["explain", "the cat\nsat on", "--gap-dir", str(gap), "--find", "1", "--out", str(out)]) == 0
        assert main(["report", str(gap)]) == 0
    return gap / "report.html", out / "explain.html", json.loads((out / "explain.json").read_text())


@pytest.fixture(scope="module")
def browser():
    with Chromium() as b:
        yield b


def test_explain_page_shows_every_token_and_a_click_opens_its_detail(pages, browser, tmp_path):
    _, explain_html, data = pages
    page = browser.open(explain_html.as_uri(), width=1200, height=900)
    assert page.evaluate("document.body.getAttribute('data-ready')") == "1"
    for p, prompt in enumerate(data["prompts"]):
        shown = page.evaluate(f"document.querySelectorAll('.tok[data-p=\"{p}\"]').length")
        assert shown == len(prompt["tokens"])
    tokens = data["prompts"][0]["tokens"]
    for t in (2, len(tokens) - 1):  # a token with a next one, and the last
        page.click(f".tok[data-p='0'][data-t='{t}']")
        assert page.evaluate("document.getElementById('detail-0').getAttribute('data-position')") == str(t)
        text = page.evaluate("document.getElementById('detail-0').innerText")
        assert f"position {t}" in text and "top-5" in text and "later losses" in text
        if tokens[t]["next_token"] is not None:
            assert f"{tokens[t]['vanilla_loss']:.3f}" in text and f"{tokens[t]['myopic_loss']:.3f}" in text
    colours = page.evaluate(
        "Array.from(document.querySelectorAll('.tok[data-p=\"0\"]')).map(e => getComputedStyle(e).backgroundColor)")
    for tk, colour in zip(tokens, colours):
        r, _, b = (int(v) for v in colour[colour.index("(") + 1:-1].split(",")[:3])
        if tk["gap"] is not None and abs(tk["gap"]) > 0.05 * data["prompts"][0]["mean_gap"] + 1e-3:
            assert (r > b) == (tk["gap"] > 0), (tk["gap"], colour)  # orange = myopic worse, purple = better
    shot = page.screenshot(tmp_path / "explain.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    assert page.errors == []


def test_report_renders_without_errors_on_a_desktop_and_a_phone(pages, browser, tmp_path):
    report_html, _, _ = pages
    page = browser.open(report_html.as_uri(), width=1200, height=900)
    assert page.evaluate("document.querySelector('h1').innerText") == "myopia report"
    imgs = page.evaluate("Array.from(document.images).map(i => [i.src.slice(0, 22), i.naturalWidth])")
    assert imgs and all(src == "data:image/png;base64," and w > 0 for src, w in imgs)  # inlined and decoded
    page.screenshot(tmp_path / "report.png")
    page.pdf(tmp_path / "report.pdf")
    assert (tmp_path / "report.pdf").read_bytes()[:4] == b"%PDF"
    phone = browser.open(report_html.as_uri(), width=390, height=844, mobile=True)
    assert phone.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1")
    assert page.errors == [] and phone.errors == []
