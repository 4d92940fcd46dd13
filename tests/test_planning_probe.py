"""`myopia probe --planning`: the planned rhyme class at the line break, probed and steered.

On tiny float64 GPTs: the probe's states and labels are the task's planning targets, an edit
of zero (or along a direction the model never reads) writes exactly the unsteered lines,
the steered state is kept while line 2 is written, and a non-planning task is refused
before anything is written."""

from __future__ import annotations

import json

import pytest
import torch

from myopia.data import make_task
from myopia.generation import generate
from myopia.measures.probe import (
    aggregate_planning, layer_states, line_break_states, planning_entry, probe_splits, steer_targets, write_line_two,
)
from myopia.model import GPT, GPTConfig
from myopia.probes import at_positions, edit_residual

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(task, seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=task.vocab_size, block_size=task.seq_len, n_layer=2, n_head=2,
                         n_embd=16)).double().eval()


def test_line_break_states_are_the_planning_targets():
    task = make_task("planning")
    model = tiny(task)
    x, y = task.batch("test", 0, 6)
    hid = layer_states(model, x, 4)
    states, classes, couplet = line_break_states(hid, task, x, y)
    pos, want = task.planning_targets(x, y)
    assert torch.equal(classes, want)
    i = 0
    for b in range(6):  # brute force: every couplet of every row, in order
        for k, (p, e) in enumerate(zip(task.line_break_positions(), task.ending_positions())):
            assert int(x[b, p]) == task.NL and int(couplet[i]) == k
            # the planned class is the class of line 1's ending, and of line 2's ending
            assert int(classes[i]) == int(task.word_class(x[b, p - 1])) == int(task.word_class(y[b, e]))
            for layer in range(3):
                assert torch.equal(states[layer][i], hid[layer][b, p])
            i += 1
    r = steer_targets(classes, task.n_classes)
    assert (r != classes).all() and ((0 <= r) & (r < task.n_classes)).all()


def test_zero_steering_writes_the_unsteered_lines_and_the_steered_state_is_kept():
    task = make_task("planning")
    model = tiny(task, seed=1)
    x, _ = task.batch("test", 0, 8)
    clean = write_line_two(model, task, x, batch_size=3)
    assert clean.shape == (16, task.line_words)
    # brute force: the model's own greedy continuation of each line break, no edit
    for k, p in enumerate(task.line_break_positions()):
        assert torch.equal(clean.view(8, 2, -1)[:, k], generate(model, x[:, : p + 1], task.line_words, greedy=True)[:, p + 1:])
    for layer in range(3):
        assert torch.equal(write_line_two(model, task, x, layer, torch.zeros(16, 16), batch_size=3), clean)
    # a steer that is kept: every forward of the line sees it. Brute force: a greedy loop with
    # the edit around each forward gives the same line, and dropping the edit after the first
    # token (a steer that is not kept) gives another one: the comparison can fail
    g = torch.Generator().manual_seed(0)
    delta = 3 * torch.randn(16, 16, generator=g, dtype=torch.float64)
    steered = write_line_two(model, task, x, 1, delta, batch_size=8).view(8, 2, -1)
    differs = False
    for k, p in enumerate(task.line_break_positions()):
        seq, once = x[:, : p + 1], x[:, : p + 1]
        d = delta.view(8, 2, -1)[:, k]
        for step in range(task.line_words):
            with edit_residual(model, 1, at_positions(torch.full((8,), p), lambda h: h + d)):
                seq = torch.cat([seq, model(seq)[:, -1].argmax(-1, keepdim=True)], 1)
            if step == 0:
                with edit_residual(model, 1, at_positions(torch.full((8,), p), lambda h: h + d)):
                    once = torch.cat([once, model(once)[:, -1].argmax(-1, keepdim=True)], 1)
            else:
                once = torch.cat([once, model(once)[:, -1].argmax(-1, keepdim=True)], 1)
        assert torch.equal(steered[:, k], seq[:, p + 1:])
        differs |= not torch.equal(seq, once)
    assert differs and not torch.equal(steered.reshape(16, -1), clean)


def test_steering_a_direction_the_model_never_reads_has_no_effect():
    """After the final norm the state is read by the head alone: with the head's column j
    zeroed, adding any multiple of e_j there changes no line (inside the blocks every
    direction is read, if only through the LayerNorm's mean and variance)."""
    task = make_task("planning")
    model = tiny(task, seed=2)
    j = 3
    with torch.no_grad():
        model.lm_head.weight[:, j] = 0
    x, _ = task.batch("test", 0, 8)
    clean = write_line_two(model, task, x)
    e_j = torch.zeros(16, 16, dtype=torch.float64)
    e_j[:, j] = 50.0
    assert torch.equal(write_line_two(model, task, x, 2, e_j), clean)
    # the same edit along a direction the head reads changes lines: the test can fail
    e_0 = torch.zeros(16, 16, dtype=torch.float64)
    e_0[:, 0] = 50.0
    assert not torch.equal(write_line_two(model, task, x, 2, e_0), clean)


def test_planning_entry_with_alpha_zero_steers_nothing():
    task = make_task("planning")
    model = tiny(task, seed=3)
    settings = dict(train_seqs=48, val_seqs=16, test_seqs=32, batch_size=16, steer_alpha=0.0)
    splits = probe_splits(task, settings)
    hid = {s: layer_states(model, splits[s][0], 16) for s in splits}
    e = planning_entry(model, task, splits, hid, settings)
    assert e["chance"] == 0.25 and set(e["probe"]) == set(e["steering"]) == {"0", "1", "2"}
    for cell in e["steering"].values():
        assert cell["share"] == cell["unsteered"] and cell["n"] == 64 and cell["delta_norm"] == 0
        assert cell["kept"] == e["rhymes"]["share"]
        assert cell["wilson95"][0] <= cell["share"] <= cell["wilson95"][1]
    for cell in e["probe"].values():
        assert 0 <= cell["top1"] <= 1
    # over seeds: the pooled counts, and one interval that holds the pooled Wilson interval
    two = aggregate_planning([e, e])
    s = two["steering"]["1"]
    assert s["n"] == 128 and s["successes"] == 2 * e["steering"]["1"]["successes"]
    assert s["ci95"][0] <= s["wilson95"][0] and s["wilson95"][1] <= s["ci95"][1]


def test_probe_command_planning_on_a_gap_dir_and_refused_elsewhere(tmp_path, capsys):
    from myopia.cli import main

    common = ["--batch-size", "4", "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--test-batches", "1",
              "--eval-every", "3", "--workers", "1", "--steps", "3", "--no-progress"]
    gap = tmp_path / "gap"
    assert main(["gap", "--task", "planning", "--seeds", "2", "--detach", "kv", "--out", str(gap), *common]) == 0
    out = tmp_path / "probe"
    settings = ["--k-max", "1", "--train-seqs", "48", "--val-seqs", "16", "--test-seqs", "32", "--baseline-seqs", "32",
                "--batch-size", "16", "--no-causal", "--no-progress"]
    assert main(["probe", "--gap-dir", str(gap), "--planning", "--steer-alpha", "2", "--out", str(out), *settings]) == 0
    printed = capsys.readouterr().out
    assert "ends in steered class" in printed
    r = json.loads((out / "results.json").read_text())
    assert set(r["planning"]) == {"vanilla", "myopic"} and r["settings"]["steer_alpha"] == 2.0
    van = r["planning"]["vanilla"]
    assert van["n_seeds"] == 2 and van["alpha"] == 2.0 and set(van["steering"]) == {"0", "1"}
    runs = [r["runs"][f"vanilla-seed{s}"]["planning"]["steering"]["1"] for s in (0, 1)]
    assert van["steering"]["1"]["successes"] == sum(c["successes"] for c in runs)
    assert van["steering"]["1"]["per_seed"] == [c["share"] for c in runs]
    assert "planning" not in r["models"]["vanilla"]
    assert (out / "planning.png").exists()
    # not a planning task: refused before anything is written
    pre = tmp_path / "pre"
    assert main(["gap", "--task", "precache", "--seq-len", "8", "--window", "2", "--seeds", "1", "--detach", "kv",
                 "--out", str(pre), *common]) == 0
    capsys.readouterr()
    assert main(["probe", "--gap-dir", str(pre), "--planning", "--out", str(tmp_path / "no"), "--no-progress"]) == 2
    assert "not one" in capsys.readouterr().err and not (tmp_path / "no").exists()
