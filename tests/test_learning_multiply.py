"""Fixed-seed learning test on 1×1-digit multiplication with 2 fillers (answer = 2 digits).

Why the thresholds mean something:

* vanilla >= 90% exact match: the answer's first digit is predicted at '=', which carries
  nothing about the operands, so getting it right needs reading the operands — the past;
* the transformer bigram reads no past: its prediction at an answer position is a
  function of (position, input token) only, so it answers '=' with one fixed digit c and
  the second position (input c) with one fixed digit. It can therefore be right on at most
  the test sequences of *one* answer (the most common one): a bound computed exactly from
  the test set that no bigram model can exceed, and any leak of the past could.

Both trained models also check that teacher-forced exact match (``task.accuracy``) is greedy
decoding's exact match, sequence by sequence (the bigram gets some right and some wrong).
"""

from __future__ import annotations

from collections import Counter

import torch

from myopia.data import make_task
from myopia.policy import GradientPolicy
from myopia.runs import build_model
from myopia.train import TrainConfig, train

TASK = make_task("multiply", digits_a=1, digits_b=1, fillers=2)
TRAIN = TrainConfig(steps=300, batch_size=64, lr=1e-2, warmup_steps=20, eval_every=300, eval_batches=1, test_batches=8,
                    threads=1)  # one thread: tiny tensors, and the suite shares the machine
MODEL = {"kind": "gpt", "n_layer": 2, "n_head": 2, "n_embd": 32}


def test_vanilla_learns_multiplication_the_bigram_cannot_beat_one_fixed_answer():
    answers = Counter(tuple(row) for i in range(TRAIN.test_batches)
                      for row in TASK.batch("test", i, TRAIN.batch_size)[1][:, -2:].tolist())
    n = sum(answers.values())
    models = {"vanilla": build_model(MODEL, TASK, 0), "bigram": build_model({**MODEL, "bigram": True}, TASK, 0)}
    vanilla, bigram = (train(m, TASK, GradientPolicy(), TRAIN, progress=False) for m in models.values())
    assert vanilla.test_accuracy["n"] == bigram.test_accuracy["n"] == n
    assert vanilla.test_accuracy["correct"] >= 0.9 * n
    assert bigram.test_accuracy["correct"] <= max(answers.values())  # ~19% here: the answer 00
    x, y = TASK.batch("test", 0, 64)
    for model in models.values():
        with torch.no_grad():
            assert torch.equal(TASK.accuracy(model(x), y), greedy_exact_match(model, x, y))


@torch.no_grad()
def greedy_exact_match(model, x, y):
    """(B,) bool: the model writes the answer itself, each digit the argmax given its own
    earlier digits, and gets all of it right."""
    x, written = x.clone(), []
    ans = TASK.answer_positions()
    for i, t in enumerate(ans):
        digit = model(x)[:, t].argmax(-1)
        written.append(digit)
        if i + 1 < len(ans):
            x[:, t + 1] = digit  # the next input is the digit just written
    return (torch.stack(written, 1) == y[:, ans]).all(-1)
