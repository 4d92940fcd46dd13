"""`myopia horizon`: runs per horizon and seed, results.json layout, per-hop meaning, errors."""

from __future__ import annotations

import json


from myopia.cli import main
from myopia.measures.horizon import horizon_curve, parse_horizon, reach
from myopia.report.figures import draw
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
    for r in data["horizons"]:
        assert len(r["loss_per_seed"]) == 2 and r["loss"]["n"] == 2
        assert r["loss"]["ci95"][0] <= r["loss"]["mean"] <= r["loss"]["ci95"][1]
    by = {r["horizon"]: r for r in res.horizons}
    # T = 16: a horizon of 15 lets every causal pair carry gradient, so it trains exactly like vanilla
    assert by["15"]["loss_per_seed"] == by["inf"]["loss_per_seed"]
    assert by["0"]["loss_per_seed"] != by["inf"]["loss_per_seed"]
    assert "2 per attention hop, up to 4 back through 2 layers" == by["2"]["reach"]
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
