"""Bad input, tried as a new user would: every mistake gets one clear line naming the problem
and the fix, exit code 2, no traceback — and a finished result next to it stays byte-identical."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from myopia.cli import main

TINY = ["--steps", "4", "--batch-size", "4", "--eval-every", "4", "--eval-batches", "1", "--test-batches", "1",
        "--n-embd", "16", "--n-head", "2", "--n-layer", "1", "--no-progress", "--workers", "1"]

BROKEN = [*TINY, "--steps", "8", "--checkpoint-every", "4"]  # later flags win: 8 steps, a checkpoint at 4


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A finished gap result, a tiny HF model (and broken copies of it), a corpus, a file."""
    root = tmp_path_factory.mktemp("world")
    fin = root / "finished"
    assert main(["gap", "--seeds", "1", "--out", str(fin), *TINY]) == 0
    from myopia.hf import make_tiny

    hf = make_tiny(root / "tiny", "gpt2")
    corrupt = make_tiny(root / "corrupt", "gpt2")
    weights = next(corrupt.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    notok = make_tiny(root / "notok", "gpt2")
    for f in notok.iterdir():
        if f.name not in ("config.json", "model.safetensors", "generation_config.json"):
            f.unlink()
    text = root / "docs.txt"
    text.write_text("\n\n".join(f"Paragraph {i}: the quick brown fox jumps over the lazy dog." * 4 for i in range(40)))
    short = root / "short.txt"
    short.write_text("too short")
    (root / "a-file").write_text("not a directory")
    (root / "train-typo.json").write_text(json.dumps({"train": {"stepz": 3}}))
    (root / "train-type.json").write_text(json.dumps({"train": {"steps": "ten"}}))
    (root / "bad.json").write_text("{not json")
    (root / "myopia-config.json").write_text(json.dumps({"task": {"name": "precache"}, "train": {"steps": 3}}))
    (root / "cfgdir").mkdir()
    (root / "notes.txt").write_text("not a checkpoint")
    # a run whose only checkpoint is truncated: resuming it must name the directory to delete
    broken = root / "broken"
    assert main(["gap", "--seeds", "1", "--out", str(broken), *BROKEN]) == 0
    run = broken / "runs" / "vanilla-seed0"
    (run / "result.json").unlink()
    ckpt = run / "checkpoint" / "model.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:64])
    return root


W = "{w}"  # replaced by the world's directory
CASES = [
    # (argv, message) — every case also checks exit code 2, no traceback, finished result intact
    (["gap", "--overwrite", "--device", "banana", "--out", f"{W}/finished", *TINY], "unknown device 'banana'"),
    (["gap", "--overwrite", "--model", f"{W}/corrupt", "--data", f"{W}/docs.txt", "--out", f"{W}/finished",
      "--no-progress"], "truncated or not a safetensors file"),
    (["gap", f"{W}/cfgdir", "--out", f"{W}/o1"], "is a directory"),
    (["gap", "--out", f"{W}/a-file/sub", *TINY], "cannot create the output directory"),
    (["report", f"{W}/a-file"], "is not a directory"),
    (["decompose", "--checkpoint", f"{W}/notes.txt", "--out", f"{W}/o2", "--no-progress"],
     "not a readable safetensors checkpoint"),
    (["bonus", "--model", f"{W}/broken/runs/vanilla-seed0", "--out", f"{W}/o3", "--no-progress"],
     "truncated or corrupt"),
    (["gap", f"{W}/train-typo.json", "--out", f"{W}/o4"], "unknown setting(s) stepz; valid: steps"),
    (["gap", f"{W}/train-type.json", "--out", f"{W}/o5"], "TrainConfig.steps must be a int"),
    (["gap", "--lr", "-1e-3", "--out", f"{W}/o6"], "TrainConfig.lr must be > 0"),
    (["gap", "--hf-config", f"{W}/myopia-config.json", "--data", f"{W}/docs.txt", "--out", f"{W}/o7"],
     "has no model_type"),
    (["gap", "--task", "precache", "--data", f"{W}/docs.txt", "--out", f"{W}/o8"],
     "task precache does not take data"),
    (["gap", "--model", f"{W}/notok", "--data", f"{W}/docs.txt", "--out", f"{W}/o9"], "--tokenizer"),
    (["gap", "--seeds", "1", "--resume", "--out", f"{W}/broken", *BROKEN], "no usable checkpoint"),
    (["gap", "--model", f"{W}/tiny", "--data", f"{W}/docs.txt", "--seq-len", "200", "--out", f"{W}/o10"],
     "exceeds the model's 128 positions; lower --seq-len"),
    (["bonus", "--model", f"{W}/finished/runs/vanilla-seed0", "--seq-len", "40", "--out", f"{W}/o11"],
     "use --seq-len (and context lengths) <= 16"),
    (["sweep", "--sizes", "L2-dfoo", "--out", f"{W}/o12"], "model size 'L2-dfoo'"),
    (["gap", "--n-head", "3", "--out", f"{W}/o13"], "must be divisible by n_head=3"),
    (["gap", "--device", "cuda", "--out", f"{W}/o14"], "no CUDA GPU"),
    (["gap", "--impl", "bogus", "--out", f"{W}/o15"], "impl must be one of"),
    (["demo", "--out", f"{W}/finished"], "holds a gap measurement, not a demo"),
    (["gap", "--seeds", "0", "--out", f"{W}/o16"], "--seeds must be >= 1"),
    (["gap", "--detach", "banana", "--out", f"{W}/o17"], "unknown detach variant 'banana'"),
    (["horizon", "--horizons", "1,1", "--out", f"{W}/o18"], "given twice"),
    (["horizon", "--horizons", "x", "--out", f"{W}/o19"], "cannot read gradient policy"),
    (["gap", "--seeds", "1", "--resume", "--out", f"{W}/finished", *TINY, "--lr", "0.5"], "differs in: train"),
    (["gap", "--seeds", "1", "--out", f"{W}/finished", *TINY], "already exists"),
    (["gap", f"{W}/missing.json", "--out", f"{W}/o20"], "does not exist"),
    (["gap", f"{W}/bad.json", "--out", f"{W}/o21"], "not valid JSON"),
    (["gap", "--task", "nosuch", "--out", f"{W}/o22"], "unknown task 'nosuch'"),
    (["decompose", "--context-lengths", "4,x", "--out", f"{W}/o23"], "comma-separated integers"),
    (["bonus", "--out", f"{W}/o24"], "give the model"),
    (["gap", "--steps", "0", "--out", f"{W}/o25"], "steps must be >= 1"),
    (["sweep", "--seeds", "0", "--out", f"{W}/o26"], "--seeds must be >= 1"),
    (["gap", "--task", "text", "--data", f"{W}/short.txt", "--out", f"{W}/o27", *TINY], "short"),
    (["gap", "--task", "text", "--data", f"{W}/missing.txt", "--out", f"{W}/o28"], "does not exist"),
    (["sweep", "--sizes", "L2-d32", "--out", f"{W}/o29"], "at least 2 model sizes"),
    (["gap", "--p", "1.5", "--out", f"{W}/o30"], "p must be in [0, 1]"),
    (["gap", "--a", "fast", "--out", f"{W}/o31"], "invalid float value"),
    (["bonus", "--model", f"{W}/corrupt", "--data", f"{W}/docs.txt", "--out", f"{W}/o32"],
     "truncated or not a safetensors file"),
    (["bonus", "--model", f"{W}/notok", "--data", f"{W}/docs.txt", "--out", f"{W}/o33"], "the tokenizer is missing"),
]


@pytest.mark.parametrize("argv, message", CASES, ids=[f"{i}-{c[0][0]}" for i, c in enumerate(CASES)])
def test_bad_input_gets_one_clear_line_and_loses_nothing(world, capsys, monkeypatch, argv, message):
    monkeypatch.setenv("MYOPIA_CACHE", str(world / "cache"))
    before = snapshot(world / "finished")
    argv = [a.replace(W, str(world)) for a in argv]
    outs = [Path(argv[i + 1]) for i, a in enumerate(argv) if a == "--out"]
    existed = {o: o.exists() for o in outs}
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors (a value of the wrong type)
        code = e.code
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    assert message in err, err
    last = err.strip().splitlines()[-1]
    assert message in last or message in err.strip().splitlines()[0]
    assert snapshot(world / "finished") == before  # the finished result is byte-identical
    for o, was in existed.items():  # a refused command leaves no half-made output directory
        if not was and o.parent.exists() and o.parent.is_dir():
            assert not o.exists(), f"{o} was left behind"


def test_at_least_thirty_kinds_of_mistake_are_covered():
    assert len(CASES) >= 30


def test_overwrite_replaces_a_result_only_when_the_new_one_is_complete(world, capsys):
    out = world / "replace-me"
    assert main(["gap", "--seeds", "1", "--out", str(out), *TINY]) == 0
    first = json.loads((out / "results.json").read_text())
    assert main(["gap", "--seeds", "1", "--overwrite", "--out", str(out), *TINY, "--lr", "0.01"]) == 0
    second = json.loads((out / "results.json").read_text())
    assert second["train"]["lr"] == 0.01 and first["train"]["lr"] != 0.01
    assert not any(p.name.startswith(f".{out.name}.") for p in out.parent.iterdir())  # no temporary left


def test_make_tiny_into_an_impossible_place_is_one_line(world, capsys):
    from myopia.hf.__main__ import main as hf_main

    assert hf_main(["make-tiny", str(world / "a-file" / "x")]) == 2
    err = capsys.readouterr().err
    assert "cannot create the output directory" in err and "Traceback" not in err


def test_killed_overwrite_leaves_the_previous_result(world, monkeypatch):
    """A failure while the replacement trains: the old result stays and no temporary is left."""
    import myopia.measures.scaffold as scaffold

    out = world / "finished"
    before = snapshot(out)

    def boom(*a, **k):
        raise RuntimeError("killed while training")

    monkeypatch.setattr(scaffold, "run_all", boom)
    with pytest.raises(RuntimeError, match="previous result in .* is untouched"):
        main(["gap", "--seeds", "1", "--overwrite", "--debug", "--out", str(out), *TINY])
    assert snapshot(out) == before
    assert not (out.parent / f".{out.name}.new").exists()
    assert os.path.isdir(out)
