"""Every number in the README's result tables comes from a committed raw output.

A result table in the README is preceded by a marker naming the committed JSON it was read
from, ``<!-- results: docs/results/NAME/results.json [more.json ...] -->``; every decimal
number and percentage in the table's body must be a value of those files as printed (same
rounding; a percentage is 100x a stored share). ``scripts/reproduce.sh`` regenerates the
files, so a table can always be traced to the command that made it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!--\s*results:\s*(.*?)\s*-->")
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+\.\d+(?:e[-+]?\d+)?%?|(?<![\w.])[-+]?\d+%")


def leaves(obj) -> list[float]:
    if isinstance(obj, bool):
        return []
    if isinstance(obj, (int, float)):
        return [float(obj)]
    if isinstance(obj, dict):
        return [v for x in obj.values() for v in leaves(x)]
    if isinstance(obj, list):
        return [v for x in obj for v in leaves(x)]
    return []


def tables() -> list[tuple[int, list[str], list[str]]]:
    """(line number, json paths, table body lines) for every marked table."""
    lines = (ROOT / "README.md").read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        m = MARKER.search(line)
        if not m:
            continue
        body, j = [], i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        fenced = lines[j].startswith("```")
        j += fenced
        while j < len(lines) and (lines[j].startswith("|") if not fenced else not lines[j].startswith("```")):
            body.append(lines[j])
            j += 1
        rows = [r for r in body if not re.fullmatch(r"[\s|:\-]+", r)][1:]  # drop the header and rules
        out.append((i + 1, m.group(1).split(), rows))
    return out


def matches(token: str, values: list[float]) -> bool:
    token = token.replace("−", "-")
    percent = token.endswith("%")
    text = token.rstrip("%")
    mantissa, _, exponent = text.partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    x = float(text)
    scale = 100.0 if percent else 1.0
    tol = 0.5 * 10 ** (-decimals + int(exponent or 0)) * (1 + 1e-9) + 1e-9
    return any(abs(v * scale - x) <= tol for v in values)


def test_the_readme_marks_its_result_tables():
    assert len(tables()) >= 3


@pytest.mark.parametrize("line, paths, rows", tables(), ids=[f"README:{t[0]}" for t in tables()])
def test_every_number_in_a_result_table_is_in_its_committed_json(line, paths, rows):
    values = []
    for p in paths:
        f = ROOT / p
        assert f.is_file(), f"README line {line} names {p}, which is not committed"
        values += leaves(json.loads(f.read_text()))
    assert rows, f"README line {line}: the marker is not followed by a table"
    missing = [(row, tok) for row in rows for tok in NUMBER.findall(row.replace("−", "-"))
               if not matches(tok, values)]
    assert not missing, f"README line {line}: numbers not found in {paths}: {missing[:8]}"
