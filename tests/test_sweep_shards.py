"""A sweep spread over shards (`--shard i/n`, then `--collect`) equals the unsharded sweep."""

from __future__ import annotations

import json

import pytest
import torch

from myopia.cli import main
from myopia.measures.shards import parse_shard, shard_cells
from tiny_runs import word_salad as corpus


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MYOPIA_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)


def numbers(path) -> dict:
    """results.json without what legitimately differs between two runs (wall times, provenance)."""
    r = json.loads(path.read_text())
    for c in r["cells"]:
        c.pop("wall_time_s")
    return {k: v for k, v in r.items() if k not in ("provenance", "wall_time_s")}


def test_two_shards_then_collect_equal_the_unsharded_sweep(tmp_path, capsys):
    flags = ["sweep", "--data", corpus(tmp_path), "--seq-len", "16", "--sizes", "L1-d16,L1-d32", "--seeds", "2",
             "--tokens", "3000", "--batch-size", "8", "--workers", "1", "--no-progress"]
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    assert main([*flags, "--out", str(whole)]) == 0

    assert main([*flags, "--out", str(sharded), "--shard", "1/2"]) == 0
    first = {d.name for d in (sharded / "runs").iterdir()}
    assert len(first) == 6 and not (sharded / "results.json").exists()  # half the 12 cells (2 variants), no fit
    capsys.readouterr()
    assert main([*flags, "--out", str(sharded), "--collect"]) == 2  # shard 2 has not run: its cells are named
    err = capsys.readouterr().err
    assert "6 of 12 runs" in err and "not finished" in err
    second = {d.name for d in (whole / "runs").iterdir()} - first
    assert all(key in err for key in second), err

    assert main([*flags, "--out", str(sharded), "--shard", "2/2"]) == 0
    assert {d.name for d in (sharded / "runs").iterdir()} == first | second
    assert main([*flags, "--out", str(sharded), "--collect"]) == 0
    assert numbers(sharded / "results.json") == numbers(whole / "results.json")
    assert (sharded / "loss_vs_compute.png").stat().st_size > 1000


def test_shards_split_the_cells_evenly_and_bad_shards_are_refused():
    from myopia.runs import RunSpec

    compute = {"a": 4.0, "b": 2.0, "c": 1.0}
    specs = [RunSpec(f"{z}-{m}", {}, {}, {}, {}) for z in compute for m in ("vanilla", "myopic")]
    cost = {s.key: compute[s.key[0]] for s in specs}
    shares = [shard_cells(specs, cost, i, 3) for i in (1, 2, 3)]
    assert sorted(s.key for share in shares for s in share) == sorted(s.key for s in specs)  # each cell once
    loads = [sum(cost[s.key] for s in share) for share in shares]
    assert max(loads) - min(loads) <= 2.0  # longest-first balancing: 4 | 4 | 2+1
    assert parse_shard("2/4") == (2, 4)
    for bad in ("0/2", "3/2", "1-2", "a/b"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)
