"""A measure's runs spread over shards: job-array tasks or machines sharing one output directory.

``myopia sweep --shard i/n`` trains the i-th of n shares of the runs into the common
``--out`` (a shared filesystem) and fits nothing; ``--collect`` trains nothing and
summarises once every run has finished, naming any that has not
(:func:`myopia.measures.scaffold.run_measure`'s ``share`` and ``collect``). Runs go to
shards longest-first, each to the shard with the least work so far, so shards take about
equally long; the assignment is a function of the measure's config only, so every shard,
started anywhere, computes the same one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from myopia.measures.scaffold import run_measure
from myopia.runs import RunSpec


@dataclass
class Share:
    """What one ``--shard i/n`` trained (no summary: that is ``--collect``'s)."""

    shard: list[int]  # [i, n], 1-based
    cells: list[str]  # keys of this shard's runs
    finished: list[str] = field(default_factory=list)  # runs of the whole measure with a result so far
    total: int = 0  # runs of the whole measure


def parse_shard(shard: str | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``"2/4"`` or ``(2, 4)`` -> (2, 4): shard i of n, 1 <= i <= n."""
    if isinstance(shard, str):
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", shard)
        if not m:
            raise ValueError(f"--shard {shard!r} is not of the form I/N (e.g. 1/4: the first of 4 shards)")
        shard = (int(m.group(1)), int(m.group(2)))
    i, n = (int(v) for v in shard)
    if not 1 <= i <= n:
        raise ValueError(f"--shard {i}/{n}: I must be between 1 and N (shards are numbered 1..N)")
    return i, n


def share_args(shard, collect: bool) -> tuple[int, int] | None:
    """The parsed ``shard`` of a measure call, refused together with ``collect``."""
    if shard is not None and collect:
        raise ValueError("--shard and --collect are separate steps: run every --shard I/N, then --collect once")
    return None if shard is None else parse_shard(shard)


def shard_cells(specs: list[RunSpec], cost: dict[str, float], i: int, n: int) -> list[RunSpec]:
    """The runs of shard i of n: longest first (``cost``: run key -> work), each to the
    shard with the least work so far."""
    load = [0.0] * n
    owner = {}
    for s in sorted(specs, key=lambda s: (-cost[s.key], s.key)):
        k = min(range(n), key=lambda j: (load[j], j))
        owner[s.key] = k
        load[k] += cost[s.key]
    return [s for s in specs if owner[s.key] == i - 1]


def train_share(name: str, config: dict, specs: list[RunSpec], cost: dict[str, float], shard: tuple[int, int],
                out_dir: str | Path, **run_args) -> Share:
    """Train shard ``(i, n)`` of measure ``name``'s runs into ``out_dir`` (no summary)."""
    i, n = shard
    mine = shard_cells(specs, cost, i, n)
    run_measure(name, config, specs=specs, summarize=None, out_dir=out_dir, share=mine,
                desc=f"{name} shard {i}/{n}", **run_args)
    runs = Path(out_dir) / "runs"
    return Share(shard=[i, n], cells=[s.key for s in mine], total=len(specs),
                 finished=[s.key for s in specs if (runs / s.key / "result.json").is_file()])
