"""scripts/gap_summary.py: the README's reference and by-domain tables are read from it, so
its relative gaps and its between-output interval are checked against their definitions."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
from scipy.stats import t

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("gap_summary", ROOT / "scripts" / "gap_summary.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def gap_output(path: Path, vanilla: list[float], myopic: dict[str, list[float]]) -> str:
    """The fields of a `myopia gap` results.json that the summary reads."""
    data = {
        "vanilla_loss": vanilla, "trivial_loss": 3.0, "seeds": list(range(len(vanilla))),
        "task": {"name": "text", "seq_len": 64}, "model": {"n_layer": 2}, "train": {"steps": 10, "batch_size": 4},
        "variants": {d: {"policy": f"myopic-{d}", "myopic_loss": m, "gap_per_seed": [a - b for a, b in zip(m, vanilla)]}
                     for d, m in myopic.items()},
    }
    path.write_text(json.dumps(data))
    return str(path)


def test_relative_gap_and_welch_difference_match_their_definitions(tmp_path):
    gs = load_script()
    a = gap_output(tmp_path / "a.json", [2.0, 2.2, 2.1], {"kv": [2.1, 2.4, 2.2]})
    b = gap_output(tmp_path / "b.json", [1.0, 1.1, 0.9, 1.2], {"kv": [1.5, 1.4, 1.5, 1.9]})
    out = gs.main([str(tmp_path / "s.json"), f"a={a}", f"b={b}"])
    rel = out["outputs"]["a"]["variants"]["kv"]["relative_gap_per_seed"]
    assert rel == pytest.approx([0.1 / 2.0, 0.2 / 2.2, 0.1 / 2.1])
    assert out["outputs"]["a"]["tokens_per_run"] == 10 * 4 * 64

    # Welch by hand: se² = s_a²/n_a + s_b²/n_b, Welch–Satterthwaite degrees of freedom
    ga, gb = [0.1, 0.2, 0.1], [0.5, 0.3, 0.6, 0.7]
    ma, mb = sum(ga) / 3, sum(gb) / 4
    va = sum((x - ma) ** 2 for x in ga) / 2 / 3
    vb = sum((x - mb) ** 2 for x in gb) / 3 / 4
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3)
    half = t.ppf(0.975, df) * math.sqrt(va + vb)
    diff = out["difference"]["variants"]["kv"]["gap"]
    assert out["difference"]["of"] == "b - a"
    assert diff["mean"] == pytest.approx(mb - ma)
    assert diff["df"] == pytest.approx(df)
    assert diff["ci95"] == pytest.approx([mb - ma - half, mb - ma + half])
    assert json.loads((tmp_path / "s.json").read_text())["difference"]["variants"]["kv"]["gap"]["ci95"] == diff["ci95"]


def test_a_missing_input_is_one_clear_error(tmp_path, capsys):
    gs = load_script()
    with pytest.raises(SystemExit):
        gs.main([str(tmp_path / "s.json"), f"a={tmp_path / 'nope.json'}"])
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()
