"""The claims of `myopia demo`, on a smaller fixed-seed budget.

Loss thresholds are relative to the trivial loss (the best predictor without the
pre-cached feature, i.e. predicting 0 for the window sum); probe thresholds are held-out
R² of a linear probe for sin(a·x_t) at position t after block 1. They are meaningful
because:

* precache (window K = 8), vanilla <= 30% of trivial: only a model that has sin(a·x_i)
  available at later positions gets there; probe R² >= 0.8 says *how*: the feature is
  computed at position i itself, where it never helps i's own target — pre-caching (with
  K = 2, ``precache-read``, vanilla learns the task with R² near 0: it reads the raw inputs);
* precache, myopic >= 90% of trivial and R² <= 0.2, for both detach variants: with the
  myopic gradient nothing rewards computing the feature at i, and the probe finds none;
* breadcrumbs (K = 2), vanilla <= 30%, and the myopic model (the paper's "hidden" variant)
  computes the feature at t too (R² >= 0.8) and learns much of the task (<= 50%): when the
  feature helps the present, a model trained for the present computes it and later
  positions read it.
"""

from __future__ import annotations


from myopia.measures.gap import myopia_gap
from myopia.train import TrainConfig

TRAIN = TrainConfig(steps=1000, batch_size=32, lr=6e-3, warmup_steps=50, eval_every=500, test_batches=8)
MODEL = {"kind": "gpt", "n_layer": 2, "n_head": 4, "n_embd": 64}
AFTER_BLOCK_1 = "1"


def test_vanilla_learns_precache_task_by_precaching_myopic_does_not(tmp_path):
    r = myopia_gap("precache", model=MODEL, train=TRAIN, seeds=[0], detach=["kv", "hidden"],
                   out_dir=tmp_path, workers=2, progress=False)
    assert r.relative(r.vanilla_loss[0]) <= 0.30
    assert r.feature_r2["vanilla"]["per_seed"][0][AFTER_BLOCK_1] >= 0.8
    for d in ("kv", "hidden"):
        var = r.variants[d]
        assert r.relative(var["myopic_loss"][0]) >= 0.90, d
        assert r.feature_r2[var["policy"]]["per_seed"][0][AFTER_BLOCK_1] <= 0.2, d
    assert r.gap["mean"] > 0.5 * r.trivial_loss
    # vanilla learned, so the myopic runs sitting at the trivial loss are the measured effect, not a warning
    assert r.warnings == []


def test_both_learn_breadcrumbs_control_myopic_computes_the_feature_itself(tmp_path):
    r = myopia_gap("breadcrumbs", model=MODEL, train=TRAIN, seeds=[0], detach=["hidden"],
                   out_dir=tmp_path, workers=2, progress=False)
    assert r.relative(r.vanilla_loss[0]) <= 0.30
    # the myopic model computes sin(a·x_t) at t for its own target (the probe finds it) and
    # learns much of the task, which no myopic model does on precache (>= 90% there); summing
    # the window is slower to learn under myopia (this seed: 37% of trivial after 1000
    # steps, 37% in the demo's 700, 34% at `myopia gap`'s 1500), so the loss bound is 50%
    assert r.feature_r2["myopic-hidden"]["per_seed"][0][AFTER_BLOCK_1] >= 0.8
    assert r.relative(r.myopic_loss[0]) <= 0.50
