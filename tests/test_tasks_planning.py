"""The planning task: rhymes hold, the planned label is a function of the sequence, data is seeded."""

from __future__ import annotations

import math

import pytest
import torch

from myopia.data import make_task


@pytest.mark.parametrize("name", ["planning", "planning-index"])
def test_line_two_rhymes_and_its_cue_names_the_ending(name):
    task = make_task(name)
    x, y = task.batch("train", 0, 64, stream=3)
    seq = torch.cat([x, y[:, -1:]], dim=1)
    L, W = task.line_words, task.words_per_class
    for k in range(task.couplets):
        o = 1 + k * task.couplet_len  # seq index of the couplet's first word
        e1, nl, cue, e2, sep = seq[:, o + L - 1], seq[:, o + L], seq[:, o + L + 1], seq[:, o + 2 * L], seq[:, o + 2 * L + 1]
        assert (nl == task.NL).all() and (sep == task.SEP).all()
        assert (task.word_class(e1) >= 0).all() and (task.word_class(e2) == task.word_class(e1)).all()
        assert (e2 != e1).all()  # a rhyme, not a repetition
        assert torch.equal(cue, task.cue_of(e2))
        if task.cue == "index":
            assert torch.equal(cue - task.first_cue, (e2 - task.first_rhyme_word) % W)
        body = torch.cat([seq[:, o: o + L - 1], seq[:, o + L + 2: o + 2 * L]], dim=1)
        assert (body < task.body_words).all()
    # every rhyme word of a class can end line 2 (e2 is uniform among the others)
    assert set(task.word_class(seq[seq < task.first_cue]).tolist()) >= set(range(task.n_classes))


def test_planning_label_is_the_class_of_the_coming_ending_and_a_function_of_the_sequence():
    task = make_task("planning", couplets=3)
    x, y = task.batch("test", 1, 16)
    pos, cls = task.planning_targets(x, y)
    assert pos.shape == (16 * 3, 2) and cls.shape == (16 * 3,)
    assert (x[pos[:, 0], pos[:, 1]] == task.NL).all()  # every label sits on a line break
    line1_end = x[pos[:, 0], pos[:, 1] - 1]
    assert torch.equal(cls, task.word_class(line1_end))  # decided by line 1, due at the ending
    ends = torch.tensor(task.ending_positions())
    assert torch.equal(cls, task.word_class(y[:, ends]).reshape(-1))
    # deterministic: the same sequence gives the same label
    x2, y2 = x.clone(), y.clone()
    assert torch.equal(task.planning_targets(x2, y2)[1], cls)
    assert set(task.named_positions()) == {"line break", "ending"}
    assert task.named_positions()["line break"] == pos[:3, 1].tolist()


def test_seeded_and_round_trips():
    task = make_task("planning", n_classes=3, words_per_class=5, cue="index")
    again = make_task(**task.to_dict())
    assert again == task
    assert torch.equal(task.batch("train", 4, 8, stream=2)[0], again.batch("train", 4, 8, stream=2)[0])
    assert not torch.equal(task.batch("train", 4, 8, stream=2)[0], task.batch("train", 4, 8, stream=3)[0])
    assert not torch.equal(task.batch("train", 4, 8)[0], make_task("planning", n_classes=3, words_per_class=5,
                                                                   cue="index", seed=1).batch("train", 4, 8)[0])
    assert task.vocab_size == task.body_words + 15 + 5 + 2
    assert "NL" in task.decode(task.batch("val", 0, 1)[0][0])


def test_trivial_and_best_losses_bracket_the_ending():
    task = make_task("planning")
    x, y = task.batch("val", 0, 2)
    triv, best = task.trivial_loss(x, y), task.best_loss(x, y)
    for t in task.ending_positions():
        assert triv[0, t] == pytest.approx(math.log(task.n_rhyme_words)) and best[0, t] == 0
    for t in task.line_break_positions():
        assert triv[0, t] == pytest.approx(math.log(task.n_cues))
        assert best[0, t] == pytest.approx(math.log(task.words_per_class - 1))
    # the best loss is what the true conditional distribution scores: check it empirically at the cue
    xs, ys = task.batch("train", 0, 4000)
    t = task.line_break_positions()[0]
    e1, cue = xs[:, t - 1], ys[:, t]
    pairs = torch.stack([e1, cue], 1).unique(dim=0, return_counts=True)[1]
    assert len(pairs) == task.n_rhyme_words * (task.words_per_class - 1)  # W - 1 cues per line-1 ending


@pytest.mark.parametrize("kwargs, message", [
    (dict(words_per_class=1), "words_per_class must be >= 2"),
    (dict(line_words=1), "line_words must be >= 2"),
    (dict(cue="class"), "cue must be one of word, index"),
    (dict(fillers=2), "task planning does not take fillers"),
])
def test_bad_settings_are_refused_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_task("planning", **kwargs)
