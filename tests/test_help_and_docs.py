"""The help says what the commands do, and the README's Python example runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from myopia.cli import build_parser, main
from myopia.measures.scaffold import as_model
from myopia.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


class Captured(Exception):
    pass


def help_defaults(command: str) -> dict[str, str]:
    """flag -> the default its help text states."""
    text = build_parser()._subparsers._group_actions[0].choices[command].format_help()
    text = " ".join(text.split())
    return dict(re.findall(r"--([a-z0-9-]+) [A-Z_]+ .*?\(default: ([^)]*)\)", text))


@pytest.mark.parametrize("command, measure", [("gap", "myopia_gap"), ("horizon", "horizon_curve"),
                                               ("decompose", "decompose_gradients")])
def test_every_help_default_is_the_default_the_command_uses(command, measure, monkeypatch, tmp_path):
    import importlib

    mod = importlib.import_module(f"myopia.commands.{command}")

    def capture(task, **kw):
        raise Captured(kw)

    monkeypatch.setattr(mod, measure, capture)
    with pytest.raises(Captured) as got:
        main([command, "--out", str(tmp_path / "o"), "--debug"])
    kw = got.value.args[0]
    used = {**kw["train"].to_dict(), **as_model(kw["model"])}
    stated = help_defaults(command)
    checked = 0
    for field, value in used.items():
        flag = field.replace("_", "-")
        if flag in stated:
            assert stated[flag] == str(value), f"{command} --{flag}: help says {stated[flag]}, the command uses {value}"
            checked += 1
    assert checked >= len(TrainConfig.__dataclass_fields__) + 3  # every training flag and the model's shape


def test_bonus_help_states_the_bonus_preset(monkeypatch, tmp_path):
    import myopia.commands.bonus as bonus

    stated = help_defaults("bonus")
    monkeypatch.setattr(bonus, "load_theta0", lambda *a, **k: (None, {}, {}, None))

    def capture(theta0, task, **kw):
        raise Captured(kw["train_cfg"])

    monkeypatch.setattr(bonus, "local_myopia_bonus", capture)
    with pytest.raises(Captured) as got:
        main(["bonus", "--model", "x", "--out", str(tmp_path / "o"), "--debug"])
    for field, value in got.value.args[0].to_dict().items():
        assert stated[field.replace("_", "-")] == str(value), field


def test_readme_python_example_runs_as_a_script(tmp_path):
    """Saved as a file and run with python: no __main__ guard is needed (the Python API trains in
    this process unless told otherwise)."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    script = tmp_path / "example.py"
    script.write_text(block)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "'mean'" in proc.stdout and "'ci95'" in proc.stdout
