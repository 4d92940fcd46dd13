"""Every default model and training budget, defined once.

A preset is the default of the Python function *and* of the command that calls it, so
``local_myopia_bonus(theta0, task)`` does exactly what ``myopia bonus`` does and the help
text of every flag states the value that is really used. Training presets are plain dicts
of :class:`myopia.train.TrainConfig` fields (``TrainConfig(**preset)``), so a config file
or a flag overrides one field without restating the rest.

Why these numbers:

* ``SYNTHETIC_TRAIN`` — the CPU presets of the synthetic tasks (``myopia gap``, ``myopia
  horizon``): 1500 steps of 32 sequences at lr 6e-3. On ``precache`` (window K = 8) every
  vanilla seed pre-caches (the feature probe says so, R² >= 0.95 after block 1), on
  ``breadcrumbs`` (K = 2) the paper's myopic variant learns the control (15% of the
  trivial loss). The windows differ because a myopic model learns a breadcrumbs feature
  from the present term alone, 1/K of vanilla's signal: at K = 8 it needs far more than
  this budget (see ``myopia.data.synthetic.PRESETS``).
* ``DEMO_TRAIN`` — the demo's synthetic rows: the same at 700 steps, which keeps the whole
  demo (18 synthetic runs and the text row) within 5 minutes on 2 cores, and the claims
  still hold for every seed: vanilla pre-caches (R² 0.94-0.96, 13% of the trivial loss),
  both myopic variants stay at the trivial loss with R² <= 0.2, the paper's variant learns
  breadcrumbs (22%; strict 51%). At 1000 steps the figures were 9% / R² >= 0.91 and 17% /
  50%: the extra steps sharpen the losses, not the findings.
* ``TEXT_TRAIN`` — the demo's text row: a ~140k-parameter GPT on the built-in corpus for
  300 steps (~0.6M tokens), which keeps the whole demo within a few minutes.
* ``FINETUNE_TRAIN`` — a pretrained Hugging Face model (``myopia gap --model``): a far
  smaller step size than training from scratch.
* ``BONUS_TRAIN`` — re-optimising a trained model for the present (``myopia bonus``) is a
  fine-tune of an already trained model too; the equal-budget control θ0′ gets the same.
* ``DECOMPOSE_TRAIN`` — the vanilla model ``myopia decompose`` trains when no checkpoint is
  given, with the myopic/future gradient tracked every 50 steps.
* ``PROBE`` — ``myopia probe`` (and the feature probe of ``myopia gap``): probes are fitted
  on 256 held-out sequences (the task's val split: 4k positions at T = 16, 16k at T = 64),
  their penalty chosen on 64 and everything scored on 256 others (the test split); token
  targets are the 64 most frequent tokens plus "other" (for byte text nearly every token
  that occurs), k = 1..3 tokens ahead; the baselines count 2048 training sequences. A
  64-class probe of a 64-wide stream has ~4k weights: 16k positions fit it, and a probe of
  a whole `myopia gap` text directory (9 models, 9 probes each) takes a few CPU minutes.
* ``PLANNING_STEER_ALPHA`` — ``myopia probe --planning`` steers the state at a line break by
  alpha · (μ_r' − μ_r), the difference of two class means; alpha = 1 moves a class-r state
  by exactly the average distance between the classes, the natural unit of that edit.
* ``SWEEP_TRAIN`` — every optimisation setting of a sweep pinned, so a sweep's config (and
  a resumed directory) does not follow later changes of TrainConfig's defaults; steps,
  eval_every and checkpoint_every are replaced per size by the token budget rule.
* ``CONSEQUENCES_*`` — ``myopia consequences`` (output-side myopia on the known-law source
  ``branching``): a 2-layer d=32 GPT learns the 32-token source to within ~0.004 nats of its
  entropy rate in 200 steps, so a self-fulfilling bias would not hide behind an unlearnt
  law; one thread per run (these models are too small to gain from two, and on a busy
  machine a second thread only waits). The positive control fine-tunes the vanilla model
  for 100 steps with a policy-gradient weight of 0.5, which moves it clearly (bias ~+1.1
  nats, easy mass ~0.76 against q's 0.5) for ~0.06 nats of excess loss; 96 generations of
  64 tokens per model, seed and decoding give the drift curves. About 1.2 CPU-minutes in
  all, so under 5 minutes with one worker even on a heavily shared 2-core machine.
"""

from __future__ import annotations

# The built-in GPT that every measure trains unless told otherwise (2 layers, d=64, 4 heads).
DEFAULT_MODEL = {"kind": "gpt", "n_layer": 2, "n_head": 4, "n_embd": 64}

SYNTHETIC_TRAIN = dict(steps=1500, batch_size=32, lr=6e-3, warmup_steps=50, eval_every=250, test_batches=16)
DEMO_TRAIN = {**SYNTHETIC_TRAIN, "steps": 700}
TEXT_TRAIN = dict(steps=300, batch_size=32, lr=3e-3, warmup_steps=30, eval_every=100, test_batches=16)
FINETUNE_TRAIN = dict(steps=300, batch_size=16, lr=1e-4, warmup_steps=20, eval_every=50, checkpoint_every=100)
BONUS_TRAIN = dict(steps=200, batch_size=16, lr=1e-4, warmup_steps=10, eval_every=50, checkpoint_every=100,
                   test_batches=16)
DECOMPOSE_TRAIN = dict(steps=1500, batch_size=32, lr=3e-3, warmup_steps=50, eval_every=250, test_batches=16,
                       track_gradients_every=50)
SWEEP_TRAIN = dict(batch_size=32, lr=3e-3, min_lr_ratio=0.1, warmup_steps=30, weight_decay=0.01, beta1=0.9,
                   beta2=0.98, grad_clip=1.0, eval_batches=4, test_batches=16, steps=1500, eval_every=250,
                   checkpoint_every=250)



def train_preset(model: dict | None) -> dict:
    """The default training of a model spec: a Hugging Face model (pretrained, or an HF
    architecture) trains with ``FINETUNE_TRAIN``, the built-in GPT with ``SYNTHETIC_TRAIN``."""
    return FINETUNE_TRAIN if (model or {}).get("kind") == "hf" else SYNTHETIC_TRAIN


PROBE = dict(k_max=3, classes=64, train_seqs=256, val_seqs=64, test_seqs=256, baseline_seqs=2048, batch_size=64)
PLANNING_STEER_ALPHA = 1.0  # `myopia probe --planning`: add 1 x (mu_r' - mu_r), i.e. move the state to the class-r' mean

# The demo: two synthetic tasks and the built-in corpus, both myopic variants.
DEMO_TASKS = ("precache", "breadcrumbs")
DEMO_DETACH = ("hidden", "kv")
DEMO_TEXT_TASK = {"name": "text", "seq_len": 64}
DEMO_SEEDS = 3


# `myopia consequences`: the known-law source, model, teacher-forced training, the
# policy-gradient control and the free-running generations.
CONSEQUENCES_TASK = {"name": "branching"}
CONSEQUENCES_MODEL = {"kind": "gpt", "n_layer": 2, "n_head": 2, "n_embd": 32}
CONSEQUENCES_TRAIN = dict(steps=200, batch_size=32, lr=1e-2, warmup_steps=30, eval_every=100, checkpoint_every=100,
                          test_batches=8, threads=1)
CONSEQUENCES_CONTROL = dict(steps=100, lr=3e-3, weight=0.5, continuation_len=2, reward_floor=-10.0)
CONSEQUENCES_DRIFT = dict(samples=96, prompt_len=4, length=64, window=8, ngram=2, loop_window=16, temperature=1.0)
CONSEQUENCES_SEEDS = 3

# `myopia explain`: its tensors are one prompt of a small model, where several threads cost more in
# synchronisation than they gain (--find 5 on the demo's text models, 2 busy cores: 47 s with one
# thread, 123 s with two).
EXPLAIN_THREADS = 1
