"""`myopia report RUN_DIR`: one HTML page for a measurement directory.

Reads every ``results.json`` below RUN_DIR (with the ``config.json`` next to it saying
which measure wrote it), redraws the gap plots and the gradient-tracking plots of runs
trained with ``track_gradients_every``, and writes ``RUN_DIR/report.html`` showing the
headline numbers, the settings and every PNG. Nothing is retrained.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from myopia.results import atomic_write_text, format_ci


def _measure_dirs(root: Path) -> list[Path]:
    found = sorted({p.parent for p in root.rglob("results.json") if "runs" not in p.relative_to(root).parts})
    return found


def _tracked_runs(root: Path) -> list[Path]:
    out = []
    for metrics in sorted(root.rglob("metrics.jsonl")):
        with open(metrics) as f:
            if any('"grad_myopic_norm"' in line for line in f):
                out.append(metrics.parent)
    return out


def _scalar_summary(data: dict, limit: int = 16) -> list[tuple[str, str]]:
    rows = []
    for key, val in data.items():
        if key in ("provenance", "curves"):
            continue
        if isinstance(val, (int, float, str, bool)):
            rows.append((key, f"{val:.4g}" if isinstance(val, float) else str(val)))
        elif isinstance(val, dict) and "mean" in val and "ci95" in val:
            rows.append((key, f"{val['mean']:.4g} {format_ci(val, '.4g')}"))
        elif isinstance(val, list) and val and len(val) <= 8 and all(isinstance(v, (int, float)) for v in val):
            rows.append((key, ", ".join(f"{v:.4g}" for v in val)))
        if len(rows) >= limit:
            break
    return rows


def build_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html``; returns its path."""
    root = Path(run_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory; give the --out directory of a myopia command")
    measures = _measure_dirs(root)
    tracked = _tracked_runs(root)
    if not measures and not tracked:
        raise FileNotFoundError(f"{root} holds no results.json and no training metrics; is it a myopia output directory?")
    from myopia.report.decompose_plots import plot_gradient_tracking_from_run
    from myopia.report.figures import draw

    for run in tracked:
        plot_gradient_tracking_from_run(run)
    parts = [f"<h1>myopia report: {html.escape(str(root))}</h1>"]
    for d in measures:
        data = json.loads((d / "results.json").read_text())
        cfg_path = d / "config.json"
        config = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
        measure = data.get("measure") or config.get("measure", "result")
        draw({**data, "measure": measure}, d)
        rel = d.relative_to(root).as_posix() or "."
        parts.append(f"<h2>{html.escape(measure)}: {html.escape(rel)}</h2>")
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in _scalar_summary(data))
        parts.append(f"<table>{rows}</table>")
        for png in sorted(d.glob("*.png")):
            parts.append(f'<p><img src="{html.escape(png.relative_to(root).as_posix())}" style="max-width:100%"></p>')
        if config:
            parts.append(f"<details><summary>config</summary><pre>{html.escape(json.dumps(config, indent=2))}</pre></details>")
        if "provenance" in data:
            parts.append(f"<details><summary>provenance</summary><pre>{html.escape(json.dumps(data['provenance'], indent=2))}</pre></details>")
    if tracked:
        parts.append("<h2>gradient tracking (myopic vs future gradient during training)</h2>")
        for run in tracked:
            png = (run / "gradient_tracking.png").relative_to(root).as_posix()
            parts.append(f'<h3>{html.escape(run.relative_to(root).as_posix())}</h3><p><img src="{html.escape(png)}" style="max-width:100%"></p>')
    style = "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}td{padding:2px 10px}</style>"
    out = root / "report.html"
    atomic_write_text(out, f"<!doctype html><html><head><meta charset='utf-8'>{style}</head><body>{''.join(parts)}</body></html>\n")
    return out
