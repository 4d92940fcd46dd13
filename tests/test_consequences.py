"""Output-side myopia: the known-law source, the self-fulfilling bias measure (zero for q itself,
the right sign and size for hand-made p), free-running text statistics, the policy-gradient
control, and `myopia consequences` end to end."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from myopia.cli import main
from myopia.data import make_task
from myopia.measures.consequences import (
    DriftConfig, SourceModel, branch_statistics, kl_to_source, output_myopia, self_fulfilling_bias, text_statistics,
)
from myopia.policy import GradientPolicy
from myopia.reinforce import consequence_objective, leave_one_out_advantage
from myopia.runs import build_model
from myopia.train import TrainConfig, train

torch.set_num_threads(1)
TASK = make_task("branching")
X, Y = TASK.batch("test", 0, 64)


def easy_scaled_logits(c: float, x=X) -> torch.Tensor:
    """p ∝ q with every easy entry's probability multiplied by c: over-predicts easy tokens for c > 1."""
    logits = TASK.next_token_law(x).log()
    logits[..., [e for e, _ in TASK.pairs]] += math.log(c)
    return logits


# ---------------------------------------------------------------------- the source
def test_source_law_is_exact_and_pairs_have_equal_probability_but_unequal_continuations():
    Q = TASK.transition
    assert torch.allclose(Q.sum(1), torch.ones(TASK.vocab_size, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(TASK.stationary @ Q, TASK.stationary, atol=1e-12)
    for b in TASK.branch_ids:
        for e, h in TASK.pairs:
            assert Q[b, e] == Q[b, h] > 0  # the same true probability, bit for bit
    ent = TASK.continuation_entropy()
    for e, h in TASK.pairs:  # 2 steps: ~2 H(0.9, 0.1/3 x 3) vs 2 log 6
        assert ent[e] < 1.0 < 3.5 < ent[h]
    # the data follow the law: every step is possible, and the mean log q of 64k sampled steps is the
    # entropy rate within 4 standard errors (a wrong sampler or stationary law would be far off)
    x, y = TASK.batch("train", 0, 2048)
    logq = TASK.source_log_prob(x, y)
    assert torch.isfinite(logq).all()
    se = float(logq.std()) / math.sqrt(logq.numel())
    assert abs(-float(logq.mean()) - TASK.entropy_rate()) < 4 * se
    assert torch.equal(TASK.batch("val", 3, 4)[0], make_task("branching").batch("val", 3, 4)[0])  # seeded
    assert TASK.ngram_law(3).sum().item() == pytest.approx(1.0, abs=1e-12)


def test_source_settings_get_one_clear_error():
    with pytest.raises(ValueError, match="task branching does not take a"):
        make_task("branching", a=3.0)
    with pytest.raises(ValueError, match="path_len must be >= 2"):
        make_task("branching", path_len=1)
    with pytest.raises(ValueError, match="needs n_pairs >= 2"):
        make_task("branching", n_pairs=1)


# ---------------------------------------------------------------------- the bias measure
def test_bias_of_the_source_itself_is_exactly_zero():
    assert self_fulfilling_bias(TASK.next_token_law(X).log(), X, TASK) == 0.0
    assert self_fulfilling_bias(SourceModel(TASK)(X), X, TASK) == 0.0  # float32 logits, as a model gives
    st = branch_statistics(TASK.next_token_law(X).log(), X, TASK)
    assert st["bias"].numel() > 100 and torch.all(st["bias"] == 0)
    assert torch.allclose(st["easy_mass"], torch.full_like(st["easy_mass"], 0.5), atol=1e-12)
    assert st["kl_easy"].abs().max() < 1e-12 and st["kl_hard"].abs().max() < 1e-12
    assert kl_to_source(TASK.next_token_law(X).log(), X, TASK).abs().max() < 1e-12


def test_bias_of_p_that_over_predicts_easy_tokens_is_positive_and_exactly_log_c():
    # p = q with easy entries up-weighted by c, renormalised: log p(e) - log p(h) = log c + 0 at every pair
    for c in (2.0, 0.5):
        assert self_fulfilling_bias(easy_scaled_logits(c), X, TASK) == pytest.approx(math.log(c), abs=1e-12)
    st = branch_statistics(easy_scaled_logits(2.0), X, TASK)
    assert torch.allclose(st["easy_mass"], torch.full_like(st["easy_mass"], 2 / 3), atol=1e-12)
    kl = kl_to_source(easy_scaled_logits(2.0), X, TASK)
    at = torch.isin(X, torch.tensor(TASK.branch_ids))
    # KL(q||p) at a branch splits into a negative easy part (p > q there) and a positive hard part
    assert (st["kl_easy"] < 0).all() and (st["kl_hard"] > 0).all()
    assert torch.allclose(st["kl_easy"] + st["kl_hard"], kl[at], atol=1e-12)


def test_bias_is_within_pairs_a_preference_for_likelier_pairs_is_not_a_bias():
    # p sharpened toward the likelier pairs (p ∝ q^2 at branches) keeps e_k and h_k equal: bias 0
    logits = 2 * TASK.next_token_law(X).log()
    assert self_fulfilling_bias(logits, X, TASK) == pytest.approx(0.0, abs=1e-12)


def test_bias_equals_its_definition_written_as_loops():
    g = torch.Generator().manual_seed(0)
    x = X[:4]
    logits = torch.randn(*x.shape, TASK.vocab_size, generator=g, dtype=torch.float64)
    q, logp = TASK.next_token_law(x), torch.log_softmax(logits, -1)
    per_pos = []
    for b in range(x.shape[0]):
        for t in range(x.shape[1]):
            num = den = 0.0
            for e, h in TASK.pairs:
                if q[b, t, e] > 0 and q[b, t, h] > 0:
                    w = float(q[b, t, e] + q[b, t, h])
                    num += w * float((logp[b, t, e] - logp[b, t, h]) - (q[b, t, e].log() - q[b, t, h].log()))
                    den += w
            if den > 0:
                per_pos.append(num / den)
    assert self_fulfilling_bias(logits, x, TASK) == pytest.approx(sum(per_pos) / len(per_pos), abs=1e-12)


# ---------------------------------------------------------------------- free-running text
def test_text_statistics_find_loops_and_source_text_is_close_to_the_source_law():
    drift = DriftConfig(samples=64, prompt_len=4, length=32, window=16, ngram=2, loop_window=16)
    src = TASK.sample(256, 36, torch.Generator().manual_seed(1))
    stats = text_statistics(src, TASK, drift)
    assert stats["invalid_rate"] == 0.0 and stats["loops"] <= 2
    assert max(stats["ngram_divergence"]) < 0.15  # 4096 bigrams per window of the exact source
    assert 0.4 < stats["easy_choice_rate"] < 0.6
    cycle = src[:1, 4:8].repeat(1, 9)  # one 4-token path repeated: a loop, and far from the source law
    looped = text_statistics(cycle, TASK, drift)
    assert looped["loops"] == 1 and min(looped["ngram_divergence"]) > 0.5


# ---------------------------------------------------------------------- the positive control
def test_leave_one_out_baseline_excludes_each_sequence_own_return():
    R = torch.tensor([[1.0, 2.0], [3.0, 6.0], [5.0, 1.0]])
    adv = leave_one_out_advantage(R)
    assert torch.allclose(adv[0], R[0] - (R[1] + R[2]) / 2) and torch.allclose(adv[2], R[2] - (R[0] + R[1]) / 2)
    with pytest.raises(ValueError, match="batch_size >= 2"):
        leave_one_out_advantage(R[:1])


def test_policy_gradient_control_moves_the_bias_and_teacher_forcing_does_not():
    """The claim of the measure, small: a teacher-forced model has |bias| < 0.1 nats, and the
    policy-gradient fine-tune that rewards easy continuations lifts it above 0.5. The returns
    after an easy and a hard entry differ by ~2.7 nats, so the control's push is large; a
    teacher-forced model sees e_k and h_k equally often and has nothing to tilt it."""
    task = make_task("branching", seq_len=16)
    cfg = TrainConfig(steps=150, batch_size=32, lr=1e-2, warmup_steps=15, eval_every=150, test_batches=1)
    model = build_model({"kind": "gpt", "n_layer": 1, "n_head": 2, "n_embd": 32}, task, seed=0)
    train(model, task, GradientPolicy(), cfg, seed=0, progress=False)
    x, _ = task.batch("test", 0, 256)

    def bias(m):
        with torch.no_grad():
            return self_fulfilling_bias(m(x), x, task)

    assert abs(bias(model)) < 0.1
    control = copy.deepcopy(model)
    objective = consequence_objective(task, seed=0, weight=1.0, continuation_len=2, reward_floor=-10.0)
    tune = TrainConfig(steps=60, batch_size=32, lr=2e-3, warmup_steps=5, eval_every=60, test_batches=1)
    res = train(control, task, GradientPolicy(), tune, seed=0, progress=False, objective=objective)
    assert bias(control) > 0.5
    assert math.isfinite(res.test_loss)  # held-out loss is still the task's loss
    # the draws are seeded per step: the same step gives the same loss (a resumed run repeats them)
    xb, yb = task.batch("train", 3, 8)
    assert objective(control, xb, yb, GradientPolicy(), 3).item() == objective(control, xb, yb, GradientPolicy(), 3).item()


# ---------------------------------------------------------------------- the command
TINY = ["--seeds", "2", "--steps", "30", "--control-steps", "10", "--n-embd", "16", "--samples", "8",
        "--length", "16", "--window", "8", "--loop-window", "8", "--test-batches", "2", "--workers", "1",
        "--no-progress"]


def test_consequences_command_writes_the_promised_results(tmp_path):
    out = tmp_path / "c"
    assert main(["consequences", "--out", str(out), *TINY]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["measure"] == "consequences" and (out / "consequences.png").stat().st_size > 0
    assert set(data["models"]) == {"vanilla", "myopic", "control", "finetune"}
    for name, m in data["models"].items():
        assert set(m["bias"]) >= {"mean", "ci95"} and len(m["bias"]["ci95"]) == 2 and len(m["bias_per_seed"]) == 2
        assert 0.0 <= m["loop_rate"] <= 1.0 and 0.0 <= m["greedy"]["loop_rate"] <= 1.0
        assert len(m["ngram_divergence"]) == len(data["lengths"]) == 2
    assert data["models"]["myopic"]["policy"] == "myopic" and "detach=kv" in data["models"]["myopic"]["role"]
    assert data["source"]["bias"] == 0.0
    config = json.loads((out / "config.json").read_text())
    assert config["control"]["weight"] > 0 and config["detach"] == ["kv"]
    # the control started from the vanilla model of its seed and trained with its own objective
    assert (out / "runs" / "control-seed1" / "result.json").exists()
    # rerunning with --resume reuses every run and gives the same numbers
    assert main(["consequences", "--out", str(out), "--resume", *TINY]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["models"]["control"]["bias"] == data["models"]["control"]["bias"]


@pytest.mark.parametrize("flags, message", [
    (["--window", "7"], "must be a multiple of window"),
    (["--control-weight", "0"], "control weight must be > 0"),
    (["--prompt-len", "0"], "prompt_len must be >="),
    (["--loop-window", "1"], "loop_window must be in"),
    (["--pool", "1"], "pool must be >= 2"),
    (["--seeds", "0"], "--seeds must be >= 1"),
    (["--batch-size", "1"], "batch_size >= 2"),
])
def test_consequences_bad_settings_get_one_clear_error_and_write_nothing(tmp_path, capsys, flags, message):
    out = tmp_path / "bad"
    assert main(["consequences", "--out", str(out), "--no-progress", *flags]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_task_without_a_known_law_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no known law"):
        output_myopia("precache", out_dir=tmp_path / "p")
    assert not (tmp_path / "p").exists()
