"""`myopia gap` end to end on a tiny budget, and the bad inputs it must refuse clearly."""

from __future__ import annotations

import json

import pytest

from myopia import GradientPolicy
from myopia.cli import main

TINY = ["--steps", "12", "--batch-size", "4", "--eval-every", "6", "--eval-batches", "1", "--test-batches", "2",
        "--n-embd", "16", "--n-head", "2", "--n-layer", "1", "--no-progress", "--workers", "1"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_gap_writes_results_with_the_promised_keys(tmp_path, capsys):
    out = tmp_path / "gap"
    code, stdout, _ = run_cli(capsys, "gap", "--task", "precache", "--seeds", "2", "--out", str(out), *TINY)
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    for key in ("trivial_loss", "vanilla_loss", "myopic_loss", "gap", "per_position_gap", "provenance", "task", "train"):
        assert key in res, key
    assert len(res["vanilla_loss"]) == len(res["myopic_loss"]) == 2
    assert len(res["gap"]["ci95"]) == 2
    assert res["gap"]["ci95"][0] <= res["gap"]["mean"] <= res["gap"]["ci95"][1]
    assert len(res["per_position_gap"]) == res["task"]["seq_len"]
    paired = [m - v for m, v in zip(res["myopic_loss"], res["vanilla_loss"])]
    assert res["gap"]["mean"] == pytest.approx(sum(paired) / 2)
    # the printed "(N%)" shares are stored: mean loss over seeds / trivial loss
    assert res["mean_loss"]["vanilla"] == pytest.approx(sum(res["vanilla_loss"]) / 2)
    assert res["share_of_trivial"]["vanilla"] == pytest.approx(sum(res["vanilla_loss"]) / 2 / res["trivial_loss"])
    assert res["share_of_trivial"]["myopic"] == pytest.approx(sum(res["myopic_loss"]) / 2 / res["trivial_loss"])
    assert (out / "gap.png").stat().st_size > 1000
    assert (out / "config.json").exists()
    assert "precache" in stdout and "gap" in stdout


def test_gap_refuses_to_overwrite_and_resumes_when_told(tmp_path, capsys):
    out = tmp_path / "gap"
    assert run_cli(capsys, "gap", "--seeds", "1", "--out", str(out), *TINY)[0] == 0
    before = (out / "results.json").read_text()
    code, _, err = run_cli(capsys, "gap", "--seeds", "1", "--out", str(out), *TINY)
    assert code == 2 and "already exists" in err and "--resume" in err
    assert (out / "results.json").read_text() == before  # nothing lost
    code, _, _ = run_cli(capsys, "gap", "--seeds", "1", "--out", str(out), "--resume", *TINY)
    assert code == 0
    assert json.loads((out / "results.json").read_text())["vanilla_loss"] == json.loads(before)["vanilla_loss"]
    code, _, err = run_cli(capsys, "gap", "--seeds", "1", "--out", str(out), "--resume", *TINY[:-2], "--workers", "1",
                           "--lr", "0.01")
    assert code == 2 and "different config" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "nosuch"], "unknown task 'nosuch'"),
        (["--p", "1.5"], "p must be in [0, 1]"),
        (["--seq-len", "2", "--window", "3"], "shorter than the window"),
        (["--detach", "weights"], "unknown detach variant 'weights'"),
        (["--seeds", "0"], "--seeds must be >= 1"),
        (["--steps", "0"], "steps must be >= 1"),
        (["--n-embd", "10", "--n-head", "3"], "must be divisible by n_head"),
    ],
)
def test_gap_bad_input_gets_one_clear_line(tmp_path, capsys, args, message):
    code, _, err = run_cli(capsys, "gap", "--out", str(tmp_path / "x"), *TINY, *args)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_missing_config_file_is_named(tmp_path, capsys):
    code, _, err = run_cli(capsys, "gap", str(tmp_path / "nope.json"), "--out", str(tmp_path / "x"), *TINY)
    assert code == 2 and "nope.json does not exist" in err


@pytest.mark.parametrize("kwargs, message", [
    (dict(horizon=-1), "horizon must be >= 0"),
    (dict(block=0), "block must be an int >= 1"),
    (dict(detach="values"), "unknown detach variant"),
    (dict(horizon=1, block=2), "not both"),
])
def test_bad_policy_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        GradientPolicy(**kwargs)


def test_policy_parse_reads_the_cli_forms():
    assert GradientPolicy.parse("inf").is_vanilla
    assert GradientPolicy.parse("myopic") == GradientPolicy(horizon=0)
    assert GradientPolicy.parse("3") == GradientPolicy(horizon=3)
    assert GradientPolicy.parse("block=4", detach="hidden") == GradientPolicy(block=4, detach="hidden")
    with pytest.raises(ValueError, match="horizon must be >= 0"):
        GradientPolicy.parse("-2")


def test_report_collects_gap_plots_and_gradient_tracking(tmp_path, capsys):
    out = tmp_path / "gap"
    assert run_cli(capsys, "gap", "--seeds", "1", "--out", str(out), "--track-gradients-every", "6", *TINY)[0] == 0
    metrics = (out / "runs" / "vanilla-seed0" / "metrics.jsonl").read_text()
    assert '"grad_myopic_norm"' in metrics and '"grad_future_norm"' in metrics
    code, stdout, _ = run_cli(capsys, "report", str(out))
    assert code == 0
    page = (out / "report.html").read_text()
    assert "gap.png" in page and "gradient_tracking.png" in page and "trivial" in page
    pngs = list(out.rglob("*.png"))  # gap.png and each tracked run's gradient_tracking.png
    assert len(pngs) >= 2 and page.count("src='data:image/png;base64,") == len(pngs)  # all inlined
    assert (out / "runs" / "vanilla-seed0" / "gradient_tracking.png").exists()
    code, _, err = run_cli(capsys, "report", str(tmp_path / "missing"))
    assert code == 2 and "is not a directory" in err
