"""report.html: the headline first (the demo's table and one sentence per measure, computed
from the numbers), then plots, then settings folded away; self-contained."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from tiny_runs import tiny_text_gap

from myopia.cli import main
from myopia.report.findings import finding
from myopia.report.html import build_report

ROOT = Path(__file__).resolve().parent.parent


def gap_data(name, vanilla, myopic: dict, trivial=0.39):
    """A gap results.json reduced to what the findings read: per-variant losses and gap stats."""
    def stat(lo, hi, mean):
        return {"mean": mean, "ci95": None if lo is None else [lo, hi], "n": 3}

    variants = {d: {"policy": "myopic" if d == "kv" else "myopic-hidden", "myopic_loss": [m] * 3,
                    "gap": stat(*ci, m - vanilla)} for d, (m, ci) in myopic.items()}
    return {"task": {"name": name}, "trivial_loss": trivial, "vanilla_loss": [vanilla] * 3, "variants": variants}


def test_gap_findings_follow_the_numbers():
    pre = gap_data("precache", 0.019, {"hidden": (0.385, (0.31, 0.42)), "kv": (0.383, (0.30, 0.43))})
    assert finding("gap", pre) == (
        "precache: vanilla reaches 5% of the trivial loss, the paper's myopia (hidden) 99% and strict myopia (kv) 98% "
        "— pre-caching is necessary here: training for the present does not learn what vanilla learns.")
    crumbs = gap_data("breadcrumbs", 0.0035, {"hidden": (0.031, (-0.014, 0.069)), "kv": (0.181, (0.107, 0.249))}, 0.418)
    text = finding("gap", crumbs)
    assert "the paper's myopia (hidden) is within seed noise of vanilla" in text
    assert "strict myopia (kv) is worse than vanilla (gap +0.1775 [+0.1070, +0.2490])" in text
    assert "necessary" not in text
    same = gap_data("text", 2.67, {"hidden": (2.70, (-0.03, 0.12))}, 3.36)
    assert "no gap beyond seed noise" in finding("gap", same)
    one = gap_data("text", 2.67, {"kv": (2.77, (None, None))}, 3.36)
    assert "one seed, so no interval" in finding("gap", one)
    assert "no summary rule" in finding("probe", {"accuracy": 0.5})


def test_sweep_and_partial_results_get_a_sentence_not_a_crash():
    sweep = json.loads((ROOT / "docs" / "results" / "sweep" / "results.json").read_text())
    text = finding("sweep", sweep)
    for label in sweep["labels"].values():  # both variants, each with its trend of k
        assert label in text
    assert "at L1-d32" in text and "at L4-d128" in text and text.count("; k ") + text.count("; fewer than 2") == 2
    assert "extrapolat" not in text
    assert "no summary" in finding("decompose", {"split": {"total": {}}})


@pytest.fixture(scope="module")
def report_root(tmp_path_factory):
    """A directory like the demo's: text (a real tiny gap), its copies relabelled breadcrumbs and
    precache, the committed sweep and a measure the report does not know."""
    root = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MYOPIA_CACHE", str(root / "cache"))
        torch.set_num_threads(1)
        gap, _ = tiny_text_gap(root / "work", steps=10)
    demo = root / "demo"
    for name in ("text", "breadcrumbs", "precache"):  # written in the wrong order on purpose
        d = demo / name
        d.mkdir(parents=True)
        data = json.loads((gap / "results.json").read_text())
        data["task"]["name"] = name
        (d / "results.json").write_text(json.dumps(data))
        shutil.copy(gap / "config.json", d / "config.json")
    shutil.copytree(ROOT / "docs" / "results" / "sweep", demo / "sweep")
    (demo / "novel").mkdir()
    (demo / "novel" / "results.json").write_text(json.dumps({"measure": "novelty", "score": 0.25, "note": "new"}))
    return demo


def test_report_reads_top_down_and_is_self_contained(report_root, capsys):
    assert main(["report", str(report_root)]) == 0
    html = (report_root / "report.html").read_text()
    assert "report.html" in capsys.readouterr().out
    assert not re.search(r"<img[^>]+src=['\"](?!data:image/png;base64,)", html)  # every image inlined
    assert not re.search(r"(src|href)=['\"]?(https?:|//)|<link ", html)  # no network
    assert "name='viewport'" in html and "@media print" in html
    found = html.index("What was found")
    rows = [html.index(f"<td>{name}</td>") for name in ("precache", "breadcrumbs", "text")]
    assert found < rows[0] < rows[1] < rows[2]  # the demo's order, whatever the directory order
    first_plot = html.index("<img")
    for name in ("precache", "breadcrumbs", "text"):
        assert html.index(f"{name}: vanilla reaches") < first_plot  # one sentence per measure before any plot
    assert html.index("sweep: myopic (strict, exact G(0)): the gap goes from") < first_plot
    assert "novelty" in html and "score" in html  # unknown measure: a generic section
    settings = html.index("Settings and provenance")
    assert first_plot < settings < html.index("<details>") and "provenance</summary>" in html
