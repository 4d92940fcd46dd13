"""Data: synthetic tasks generated from a seed, and text corpora (``name="text"``).

Every task offers the same small interface, which is all the training loop and the
measures use:

* ``batch(split, index, batch_size, stream=0) -> (x, y)``: batch ``index`` of ``split``
  ("train", "val" or "test"), a pure function of the task's seed and, for "train" only,
  of ``stream`` (the run's seed: its data order);
* ``loss(out, y) -> (B, T)`` per-position loss;
* ``trivial_loss(x, y) -> (B, T)``: a reference predictor's loss;
* ``seq_len``, ``regression``, ``n_in``/``n_out`` (regression) or ``vocab_size`` (tokens);
* ``to_dict()``: ``make_task(**task.to_dict())`` rebuilds the same task (provenance, and
  how worker processes get their task).

Optional hooks, used where a task defines them:

* ``loss_mask(y) -> (B, T) bool``: the positions whose loss counts (their loss is 0
  elsewhere); every mean is then over counted positions only (:func:`myopia.train.mean_loss`);
* ``accuracy(out, y) -> (B,) bool``: exact match of a sequence's answer, reported per run;
* ``named_positions() -> {name: [t, ...]}``: structural positions (an answer, a line break)
  at which the gap is also reported.

Tasks: ``precache``/``breadcrumbs`` (:mod:`myopia.data.synthetic`), ``branching`` (the
known-law source of ``myopia consequences``, :mod:`myopia.data.branching`), ``multiply``
(:mod:`myopia.data.multiply`), ``planning`` (:mod:`myopia.data.planning`), ``text``
(:mod:`myopia.data.text`); each ``-paper`` preset is the paper's setting.
"""

from __future__ import annotations

import dataclasses

from myopia.data import multiply, planning, synthetic
from myopia.data.branching import BranchingSource
from myopia.data.multiply import MultiplyTask
from myopia.data.planning import PlanningTask
from myopia.data.synthetic import WindowSumTask

# preset name -> (task class, its fields)
PRESETS = {
    **{name: (WindowSumTask, p) for name, p in synthetic.PRESETS.items()},
    **{name: (MultiplyTask, p) for name, p in multiply.PRESETS.items()},
    **{name: (PlanningTask, p) for name, p in planning.PRESETS.items()},
    "branching": (BranchingSource, {}),
}
SYNTHETIC_TASKS = (WindowSumTask, MultiplyTask, PlanningTask)
TASK_NAMES = tuple(PRESETS) + ("text",)


def make_task(name: str, **overrides):
    """Build a task by name; keyword arguments override the preset's fields (None = keep).

    ``make_task("text", data=None | PATH, tokenizer="byte" | "bpe" | MODEL_DIR, vocab_size=...,
    seq_len=..., field=..., seed=...)`` is next-token prediction on a corpus
    (:class:`myopia.data.text.TextTask`; the built-in corpus when ``data`` is None).
    A field the task does not have is refused with the list of those it has.
    """
    if name == "text":
        from myopia.data.text import TextTask

        cls, preset = TextTask, {}
    elif name in PRESETS:
        cls, preset = PRESETS[name]
    else:
        raise ValueError(f"unknown task {name!r}; available tasks: {', '.join(TASK_NAMES)}")
    known = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - known)
    if unknown:
        text_only = {"data", "tokenizer", "field", "vocab_size"} & set(unknown) and name != "text"
        raise ValueError(
            f"task {name} does not take {', '.join(unknown)}; its settings are {', '.join(sorted(known - {'name'}))}"
            + ("; --data/--tokenizer/--field/--vocab-size apply to --task text" if text_only else "")
        )
    if name == "text" and "data" in overrides:  # data=None is a setting of its own: the built-in corpus
        given.setdefault("data", None)
    return cls(**{**preset, **given})


__all__ = ["make_task", "TASK_NAMES", "SYNTHETIC_TASKS", "BranchingSource", "WindowSumTask", "MultiplyTask",
           "PlanningTask"]
