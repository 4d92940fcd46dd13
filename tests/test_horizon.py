"""`myopia horizon`: runs per horizon and seed, results.json layout, per-hop meaning, errors."""

from __future__ import annotations

import json


import pytest

from myopia.cli import main
from myopia.commands.horizon import format_horizon_table
from myopia.measures.horizon import horizon_curve, parse_horizon, reach
from myopia.report.figures import draw
from myopia.report.findings import horizon_finding
from myopia.results import bootstrap_ci, format_share, mean_ci95
from myopia.train import TrainConfig

TINY_MODEL = {"kind": "gpt", "n_layer": 2, "n_head": 2, "n_embd": 16}
TINY_TRAIN = TrainConfig(steps=6, batch_size=4, eval_every=6, eval_batches=1, test_batches=2, warmup_steps=2)


def test_horizon_writes_loss_per_horizon_and_seed_and_full_horizon_equals_vanilla(tmp_path):
    res = horizon_curve(
        "precache", horizons="0,2,15,inf", model=TINY_MODEL, train=TINY_TRAIN, seeds=2,
        out_dir=tmp_path / "h", workers=1, progress=False,
    )
    data = json.loads((tmp_path / "h" / "results.json").read_text())
    assert [r["horizon"] for r in data["horizons"]] == ["0", "2", "15", "inf"]
    assert [r["kind"] for r in data["horizons"]] == ["band", "band", "band", "vanilla"]
    triv = data["trivial_loss"]
    for r in data["horizons"]:
        assert len(r["loss_per_seed"]) == 2 and r["loss"]["n"] == 2
        assert r["relative_to_trivial_per_seed"] == pytest.approx([v / triv for v in r["loss_per_seed"]])
        # both intervals are percentile bootstraps: within the seeds' range, hence never below 0
        for stat, per_seed in ((r["loss"], r["loss_per_seed"]), (r["relative_to_trivial"], r["relative_to_trivial_per_seed"])):
            lo, hi = stat["ci95"]
            assert 0 <= min(per_seed) <= lo <= stat["mean"] <= hi <= max(per_seed)
            assert stat["mean"] == pytest.approx(sum(per_seed) / 2)
    by = {r["horizon"]: r for r in res.horizons}
    # T = 16: a horizon of 15 lets every causal pair carry gradient, so it trains exactly like vanilla
    assert by["15"]["loss_per_seed"] == by["inf"]["loss_per_seed"]
    assert by["0"]["loss_per_seed"] != by["inf"]["loss_per_seed"]
    assert "2 per attention hop, up to 4 back through 2 layers" == by["2"]["reach"]
    table = format_horizon_table(res)  # every seed's share is printed, beside the mean and interval
    for r in res.horizons:
        assert " ".join(f"{v:.0%}" for v in r["relative_to_trivial_per_seed"]) in table
        assert format_share(r["relative_to_trivial"]) in table
    assert "of the trivial loss at h = 0" in horizon_finding(data)  # the report reads the interval
    draw(res, tmp_path / "h")  # figures come from the result, in report/
    assert "per attention hop" in data["note"] and (tmp_path / "h" / "horizon.png").stat().st_size > 0


def test_horizon_labels_and_reach_say_what_a_horizon_means():
    assert parse_horizon("inf")[0] == "inf" and parse_horizon("inf")[1].is_vanilla
    assert parse_horizon("block=3") == ("block=3", parse_horizon("block=3")[1]) and parse_horizon("block=3")[1].block == 3
    assert reach(parse_horizon("block=3")[1], 2, 16) == "exactly the positions in j's block of 3"
    assert reach(parse_horizon("0")[1], 3, 16) == "only position j (myopic)"
    assert reach(parse_horizon("4")[1], 3, 8) == "4 per attention hop, up to 7 back through 3 layers"


def test_horizon_bad_input_gets_one_clear_error(tmp_path, capsys):
    assert main(["horizon", "--horizons", "0,1,1", "--out", str(tmp_path / "a"), "--no-progress"]) == 2
    assert "given twice" in capsys.readouterr().err
    assert main(["horizon", "--horizons", "0,-1", "--out", str(tmp_path / "b"), "--no-progress"]) == 2
    assert "horizon must be >= 0" in capsys.readouterr().err
    assert main(["horizon", "--horizons", "0,soon", "--out", str(tmp_path / "c"), "--no-progress"]) == 2
    assert "cannot read gradient policy 'soon'" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()  # nothing written for bad input


def test_share_interval_is_bounded_where_the_t_interval_crosses_zero():
    # three seeds, one far from the others (as vanilla precache-read seeds were: 1%, 2%, 15% of trivial):
    # the t-interval reaches below 0, a share cannot; the bootstrap stays within [min, max] of the seeds
    shares = [0.01, 0.02, 0.15]
    assert mean_ci95(shares)["ci95"][0] < 0
    stat = bootstrap_ci(shares)
    lo, hi = stat["ci95"]
    assert 0.01 <= lo < stat["mean"] < hi <= 0.15
    assert format_share(stat) == f"6% [{lo:.0%}, {hi:.0%}]"
    assert format_share(None) == "n/a" and format_share({"mean": 0.5, "ci95": None}) == "50%"
