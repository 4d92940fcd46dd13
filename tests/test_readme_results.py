"""Every number in the README's result tables comes from a committed raw output.

A result table in the README is preceded by a marker naming the committed JSON it was read
from, ``<!-- results: docs/results/NAME/results.json [more.json ...] -->``; every decimal
number and percentage in the table's body must be a value of those files as printed (same
rounding; a percentage is 100x a stored share). A table whose columns come from different
files names them per column, ``<!-- results: 2=docs/results/A/results.json
3=docs/results/B/results.json -->`` (columns counted from 1): then every number in column 2
must be in A and every number in column 3 in B, and a column named by no entry reads the
files given without a column. ``scripts/reproduce.sh`` regenerates the files, so a table
can always be traced to the command that made it.
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


def sources(entries: list[str]) -> dict[int | None, list[str]]:
    """Marker entries -> {column (1-based) or None for the unassigned columns: json paths}."""
    out: dict[int | None, list[str]] = {}
    for entry in entries:
        col, sep, path = entry.partition("=")
        assert not sep or col.isdigit() and int(col) >= 1, f"marker entry {entry!r}: write COLUMN=PATH with COLUMN >= 1"
        out.setdefault(int(col) if sep else None, []).append(path if sep else entry)
    return out


def cells(row: str) -> list[str]:
    """The cells of a markdown table row (a fenced table is one cell)."""
    return [c for c in row.strip().strip("|").split("|")] if row.lstrip().startswith("|") else [row]


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
    values: dict[int | None, list[float]] = {}
    for col, files in sources(paths).items():
        values[col] = []
        for p in files:
            f = ROOT / p
            assert f.is_file(), f"README line {line} names {p}, which is not committed"
            values[col] += leaves(json.loads(f.read_text()))
    assert rows, f"README line {line}: the marker is not followed by a table"
    missing = unmatched(rows, values)
    assert not missing, f"README line {line}: numbers not found in {paths}: {missing[:8]}"


def unmatched(rows: list[str], values: dict[int | None, list[float]]) -> list[tuple[str, str]]:
    """(cell, number) for every number of the rows not among its column's values; a column
    holding numbers with no file for it is an error."""
    missing = []
    for row in rows:
        for k, cell in enumerate(cells(row), start=1):
            tokens = NUMBER.findall(cell.replace("−", "-"))
            assert not tokens or k in values or None in values, f"column {k} holds numbers but the marker names no file for it"
            missing += [(cell.strip(), tok) for tok in tokens if not matches(tok, values.get(k, values.get(None)))]
    return missing


def test_a_per_column_marker_reads_each_column_from_its_own_file():
    assert sources(["a.json", "2=b.json", "3=c.json", "3=d.json"]) == {None: ["a.json"], 2: ["b.json"], 3: ["c.json", "d.json"]}
    assert cells("| 0 (myopic) | 98% [90%, 99%] | 7% |") == [" 0 (myopic) ", " 98% [90%, 99%] ", " 7% "]
    with pytest.raises(AssertionError, match="COLUMN=PATH"):
        sources(["x=b.json"])
    row = "| 0 | 98% [90%, 99%] | 7% |"
    assert unmatched([row], {2: [0.98, 0.90, 0.99], 3: [0.07]}) == []
    # each column is checked against its own file only: swapping the files finds every number missing
    assert len(unmatched([row], {2: [0.07], 3: [0.98, 0.90, 0.99]})) == 4
    with pytest.raises(AssertionError, match="column 3 holds numbers"):
        unmatched([row], {2: [0.98, 0.90, 0.99]})
