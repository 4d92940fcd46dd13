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
"""

from __future__ import annotations

from myopia.data.branching import BranchingSource
from myopia.data.synthetic import PRESETS, WindowSumTask

TASK_NAMES = tuple(PRESETS) + ("branching", "text")


def make_task(name: str, **overrides):
    """Build a task by name; keyword arguments override the preset's fields.

    ``make_task("branching", ...)`` is the known-law Markov source of ``myopia consequences``
    (:class:`myopia.data.branching.BranchingSource`).

    ``make_task("text", data=None | PATH, tokenizer="byte" | "bpe" | MODEL_DIR, vocab_size=...,
    seq_len=..., field=..., seed=...)`` is next-token prediction on a corpus
    (:class:`myopia.data.text.TextTask`; the built-in corpus when ``data`` is None).
    """
    if name == "text":
        from myopia.data.text import TextTask

        return TextTask(**_settings(TextTask, name, overrides, keep_none=("data",)))
    if name == "branching":
        return BranchingSource(**_settings(BranchingSource, name, overrides))
    if name not in PRESETS:
        raise ValueError(f"unknown task {name!r}; available tasks: {', '.join(TASK_NAMES)}")
    import dataclasses

    known = {f.name for f in dataclasses.fields(WindowSumTask)} - {"name"}
    unknown = sorted(k for k, v in overrides.items() if v is not None and k not in known)
    if unknown:
        hint = "; --data/--tokenizer/--field/--vocab-size apply to --task text" if {"data", "tokenizer", "field", "vocab_size"} & set(unknown) else ""
        raise ValueError(f"task {name} does not take {', '.join(unknown)}; its settings are {', '.join(sorted(known))}{hint}")
    params = {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}
    return WindowSumTask(**params)


def _settings(cls, name: str, overrides: dict, keep_none: tuple[str, ...] = ()) -> dict:
    """The given (not None) settings of task class ``cls``; one clear error for a setting it
    does not have (a window-sum flag on text, say)."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(k for k, v in overrides.items() if v is not None) - known)
    if unknown:
        raise ValueError(
            f"task {name} does not take {', '.join(unknown)}; its settings are {', '.join(sorted(known - {'name'}))}"
        )
    return {k: v for k, v in overrides.items() if k in known and (v is not None or k in keep_none)}


__all__ = ["make_task", "TASK_NAMES", "BranchingSource", "WindowSumTask"]
