"""The multiplication task: correct answers, seeded data, exact prompt masking, accuracy."""

from __future__ import annotations

import pytest
import torch

from myopia.data import make_task
from myopia.data.multiply import EQUALS, FILLER, IGNORE, TIMES
from myopia.train import evaluate, held_out_losses, loss_mask, mean_loss


def digits_to_int(ds) -> int:
    return sum(int(d) * 10**i for i, d in enumerate(ds))  # least significant digit first


@pytest.mark.parametrize("kw", [dict(digits_a=2, digits_b=2, fillers=3), dict(digits_a=3, digits_b=2, fillers=0),
                                dict(digits_a=2, digits_b=3, fillers=4, filler_at="operands")])
def test_answers_are_the_products_python_computes(kw):
    task = make_task("multiply", **kw)
    x, y = task.batch("test", 0, 64)
    seq = torch.cat([x, y[:, -1:]], dim=1)  # the whole sequence: x plus the last target
    assert seq.shape[1] == task.seq_len + 1
    pad = kw["fillers"] // 2 if kw.get("filler_at") == "operands" else 0
    da, db = kw["digits_a"] + pad, kw["digits_b"] + pad
    for row in seq.tolist():
        a, b = digits_to_int(row[:da]), digits_to_int(row[da + 1: da + 1 + db])
        assert row[da] == TIMES and row[da + 1 + db] == EQUALS
        fill = row[da + 2 + db: len(row) - task.answer_digits]
        assert fill == ([FILLER] * kw["fillers"] if pad == 0 else [])
        assert digits_to_int(row[-task.answer_digits:]) == a * b
        assert a < 10 ** kw["digits_a"] and b < 10 ** kw["digits_b"]  # padding digits are zeros


def test_targets_are_ignored_exactly_outside_the_answer():
    task = make_task("multiply", fillers=2)
    x, y = task.batch("train", 3, 8, stream=1)
    assert (y[:, : task.seq_len - task.answer_digits] == IGNORE).all()
    assert (y[:, task.answer_positions()] >= 0).all()
    assert torch.equal(x[:, 1:], torch.where(y[:, :-1] == IGNORE, x[:, 1:], y[:, :-1]))  # y is x shifted


def test_seeded_and_round_trips():
    task = make_task("multiply", digits_a=3, fillers=4)
    again = make_task(**task.to_dict())
    assert again == task
    for split in ("train", "val", "test"):
        assert torch.equal(task.batch(split, 2, 5, stream=7)[0], again.batch(split, 2, 5, stream=7)[0])
    assert not torch.equal(task.batch("train", 2, 5, stream=7)[0], task.batch("train", 2, 5, stream=8)[0])
    assert torch.equal(task.batch("test", 2, 5, stream=7)[0], task.batch("test", 2, 5, stream=8)[0])
    assert make_task("multiply-paper").seq_len == 10 + 10 + 2 + 10 - 1


def test_masked_mean_counts_only_answer_positions():
    task = make_task("multiply", fillers=2)
    x, y = task.batch("val", 0, 6)
    out = torch.randn(6, task.seq_len, task.vocab_size, requires_grad=True)
    loss = task.loss(out, y)
    assert (loss[:, : task.seq_len - task.answer_digits] == 0).all()
    by_hand = torch.stack([torch.nn.functional.cross_entropy(out[b, t], y[b, t])
                           for b in range(6) for t in task.answer_positions()]).mean()
    torch.testing.assert_close(mean_loss(loss, loss_mask(task, y)), by_hand)
    # the prompt gets no gradient from the objective
    mean_loss(loss, loss_mask(task, y)).backward()
    assert (out.grad[:, : task.seq_len - task.answer_digits] == 0).all()


def test_held_out_means_are_over_answer_positions_and_unmasked_tasks_are_unchanged():
    task = make_task("multiply", fillers=1)
    logits = torch.randn(task.seq_len, task.vocab_size)
    loss_of = lambda x, y: task.loss(logits.expand(x.shape[0], -1, -1), y)  # noqa: E731
    means, per_pos, mean = held_out_losses(task, loss_of, split="test", batches=3, batch_size=4)
    rows = [loss_of(*task.batch("test", i, 4)) for i in range(3)]
    ans = task.answer_positions()
    assert mean == pytest.approx(float(torch.cat([r[:, ans] for r in rows]).double().mean()), rel=1e-12)
    assert means == pytest.approx([float(r[:, ans].double().mean()) for r in rows], rel=1e-12)
    assert per_pos[: ans[0]] == [0.0] * ans[0]
    # a task without a mask: the plain means, bit for bit as before masking existed
    pre = make_task("precache")
    f = lambda x, y: pre.loss(torch.zeros_like(y), y)  # noqa: E731
    means, per_pos, mean = held_out_losses(pre, f, split="test", batches=2, batch_size=4)
    old = [f(*pre.batch("test", i, 4)).double().mean(0) for i in range(2)]
    assert per_pos == [float(v) for v in (old[0] + old[1]) / 2]
    assert mean == sum(per_pos) / len(per_pos)
    assert means == [float(o.mean()) for o in old]


class _Oracle(torch.nn.Module):
    """Logits that put the mass on the true next digit, except one wrong digit per chosen row."""

    def __init__(self, task, wrong_rows):
        super().__init__()
        self.task, self.wrong_rows = task, wrong_rows

    def forward(self, x, policy=None):
        seq = torch.stack([self.task.encode(*self._operands(row)).squeeze(0) for row in x])
        out = torch.nn.functional.one_hot(seq[:, 1:], self.task.vocab_size).float() * 5
        for r in self.wrong_rows:
            if r < len(x):
                t = self.task.answer_positions()[1]
                out[r, t] = out[r, t].roll(1)
        return out

    def _operands(self, row):
        da, db = self.task.digits_a, self.task.digits_b
        return torch.tensor([digits_to_int(row[:da].tolist())]), torch.tensor([digits_to_int(row[da + 1: da + 1 + db].tolist())])


def test_accuracy_is_exact_match_and_evaluate_reports_it():
    from myopia.train import held_out_accuracy

    task = make_task("multiply", fillers=2)
    model = _Oracle(task, wrong_rows=[0, 3])
    x, y = task.batch("test", 0, 8)
    hit = task.accuracy(model(x), y)
    assert hit.tolist() == [i not in (0, 3) for i in range(8)]
    assert held_out_accuracy(task, model, split="test", batches=2, batch_size=8) == {"correct": 12, "n": 16}
    loss, _ = evaluate(model, task, split="test", batches=1, batch_size=8)
    assert loss > 0


def test_trivial_loss_is_the_answer_digit_marginal():
    task = make_task("multiply", digits_a=1, digits_b=1)
    x, y = task.batch("test", 0, 4)
    triv = task.trivial_loss(x, y)
    counts = torch.zeros(2, 10)
    for a in range(10):
        for b in range(10):
            counts[0, (a * b) % 10] += 1
            counts[1, (a * b) // 10] += 1
    p = (counts + 1) / (counts + 1).sum(-1, keepdim=True)
    for r in range(4):
        assert triv[r, -2] == pytest.approx(-p[0, y[r, -2]].log().item(), rel=1e-5)
        assert triv[r, -1] == pytest.approx(-p[1, y[r, -1]].log().item(), rel=1e-5)
    assert (triv[:, :-2] == 0).all()


@pytest.mark.parametrize("kwargs, message", [
    (dict(fillers=-1), "fillers must be >= 0"),
    (dict(filler_at="middle"), "filler_at must be one of answer, operands"),
    (dict(filler_at="operands", fillers=3), "fillers must be even"),
    (dict(digits_a=0), "digits_a must be >= 1"),
    (dict(window=2), "task multiply does not take window"),
])
def test_bad_settings_are_refused_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_task("multiply", **kwargs)


@pytest.mark.parametrize("args, message", [
    (["--task", "multiply", "--window", "3"], "task multiply does not take window"),
    (["--task", "precache", "--fillers", "4"], "task precache does not take fillers"),
    (["--task", "multiply", "--seq-len", "9"], "task multiply does not take seq_len"),
    (["--task", "multiply", "--fillers", "-2"], "fillers must be >= 0"),
])
def test_cli_refuses_flags_of_another_task(tmp_path, capsys, args, message):
    from myopia.cli import main

    out = tmp_path / "x"
    code = main(["gap", "--out", str(out), "--steps", "2", "--no-progress", "--workers", "1", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # refused before anything is written
