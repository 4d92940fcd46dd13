"""`myopia report RUN_DIR`: one self-contained HTML page that reads top-down.

Reads every ``results.json`` below RUN_DIR (with the ``config.json`` next to it saying
which measure wrote it), redraws the figures, and writes ``RUN_DIR/report.html``:

1. the headline: the gap table (the demo's: precache, breadcrumbs, text, then any other
   gap) and one sentence per measurement saying what it found, computed from its numbers
   (:mod:`myopia.report.findings`);
2. per measurement: its numbers and its plots (PNG inlined as data URIs);
3. folded away (<details>): the settings and provenance of every measurement.

The page needs nothing beside it (no image files, no network), reads on a phone and
prints to PDF. Nothing is retrained. Measures without a summary rule get a generic
section (their scalar numbers and any plots).
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path

from myopia.report.document import page
from myopia.report.findings import demo_order, finding, gap_rows, task_name
from myopia.results import atomic_write_text, format_ci, format_share

MEASURE_ORDER = ("gap", "horizon", "decompose", "bonus", "sweep")
CAPTIONS = {
    "gap.png": "Left: held-out loss during training, every run. Right: gap per position (myopic − vanilla), mean with a bootstrap 95% CI over seeds and each seed.",
    "horizon.png": "Held-out loss against the gradient horizon (per attention hop; block = c is exact at any depth), mean with a bootstrap 95% CI over seeds, and each seed.",
    "decompose.png": "Left: share of each parameter group's gradient coming from the loss τ tokens later. Right: own loss (G(0)) vs later losses per group.",
    "context_lengths.png": "Future share of the W_K/W_V gradient against context length N.",
    "gradient_tracking.png": "Norms of the myopic and future gradients and their cosine during training.",
    "bonus.png": "Training curve of the re-optimised computation φ (past frozen at θ0) and the per-position bonus.",
    "loss_vs_compute.png": "Held-out loss against training compute, vanilla and each myopic variant; arrows: interpolated k.",
    "gap_vs_size.png": "Gap per model size and myopic variant with its 95% CI over seeds.",
    "multiplier.png": "Compute multiplier k per size: interpolated with its 95% CI over seeds and fit forms, or a bound (triangles).",
}


@dataclass
class Measurement:
    dir: Path
    rel: str  # path below the report root ("." for the root itself)
    measure: str
    data: dict  # results.json
    config: dict  # config.json (may be empty)

    @property
    def title(self) -> str:
        name = task_name(self.data) if self.measure != "sweep" else "sweep"
        return f"{self.measure}: {name}" + ("" if self.rel in (".", name) else f" ({self.rel})")

    @property
    def anchor(self) -> str:
        return "m-" + "".join(c if c.isalnum() else "-" for c in self.rel)


def _measure_dirs(root: Path) -> list[Path]:
    return sorted({p.parent for p in root.rglob("results.json") if "runs" not in p.relative_to(root).parts})


def _tracked_runs(root: Path) -> list[Path]:
    out = []
    for metrics in sorted(root.rglob("metrics.jsonl")):
        with open(metrics) as f:
            if any('"grad_myopic_norm"' in line for line in f):
                out.append(metrics.parent)
    return out


def _load(root: Path, d: Path) -> Measurement:
    data = json.loads((d / "results.json").read_text())
    cfg_path = d / "config.json"
    config = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    measure = data.get("measure") or config.get("measure", "result")
    return Measurement(d, d.relative_to(root).as_posix() or ".", measure, data, config)


def _ordered(ms: list[Measurement]) -> list[Measurement]:
    """Gap measurements in the demo's order, then the other kinds in MEASURE_ORDER, then unknown ones."""
    gaps = [m for m in ms if m.measure == "gap"]
    gaps = [gaps[i] for i in demo_order([task_name(m.data) for m in gaps])]
    rest = sorted((m for m in ms if m.measure != "gap"),
                  key=lambda m: (MEASURE_ORDER.index(m.measure) if m.measure in MEASURE_ORDER else len(MEASURE_ORDER), m.rel))
    return gaps + rest


# ---------------------------------------------------------------------- pieces
def _e(x) -> str:
    return html.escape(str(x))


def _table(header: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    th = "".join(f"<th{' class=num' if i in numeric else ''}>{_e(h)}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td{' class=num' if i in numeric else ''}>{_e(c)}</td>" for i, c in enumerate(r)) + "</tr>"
                   for r in rows)
    return f"<div class='scroll'><table><tr>{th}</tr>{body}</table></div>"


def _figure(png: Path, root: Path) -> str:
    """A PNG inlined as a data URI, with its caption (data-file: the PNG it was read from)."""
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    caption = CAPTIONS.get(png.name, png.stem.replace("_", " "))
    return (f"<figure data-file='{_e(png.relative_to(root).as_posix())}'>"
            f"<img class='figure' alt='{_e(caption)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def headline_table(gaps: list[Measurement]) -> str:
    rows = []
    for m in gaps:
        for r in gap_rows(m.data):
            rows.append([r["task"], r["policy"], f"{r['vanilla']:.4f} ({format_share(r['vanilla_rel'])})",
                         f"{r['myopic']:.4f} ({format_share(r['myopic_rel'])})", f"{r['trivial']:.4f}",
                         f"{r['gap']['mean']:+.4f} {format_ci(r['gap'])}", str(len(m.data.get('seeds', [])))])
    head = ["task", "policy", "vanilla", "myopic", "trivial", "gap [95% CI]", "seeds"]
    return (_table(head, rows, numeric={2, 3, 4, 5, 6})
            + "<p class='muted'>Held-out loss, mean over seeds; in brackets its share of the trivial loss (predict 0 for "
              "the window sum, the unigram model for text). Gap = myopic − vanilla with a 95% t-interval over seeds (paired "
              "by seed). <b>myopic</b> is strict myopia (detach=kv: past keys/values are constants), <b>myopic-hidden</b> "
              "the paper's variant (past attention inputs are constants; W_K/W_V still learn from later losses).</p>")


def _numbers(m: Measurement) -> str:
    """The measurement's own numbers, as a table that fits its kind."""
    d = m.data
    if m.measure == "gap":  # its loss rows are in the headline table; here the tokens it is worst on
        tg = d.get("token_gaps", {}).get("largest", [])
        if not tg:
            return ""
        rows = [[repr(r["text"]), str(r["count"]), f"{r['vanilla_loss']:.3f}", f"{r['myopic_loss']:.3f}", f"{r['gap']:+.3f}"]
                for r in tg[:8]]
        return ("<p>Next tokens with the largest gap (" + _e(d["token_gaps"].get("policy", "")) + " − vanilla, mean loss at "
                "the positions whose next token it is):</p>"
                + _table(["next token", "count", "vanilla", "myopic", "gap"], rows, {1, 2, 3, 4}))
    if m.measure == "horizon":
        rows = [[r["horizon"], r.get("kind", ""), f"{r['loss']['mean']:.4f} {format_ci(r['loss'], '.4f')}",
                 format_share(r.get("relative_to_trivial"))] for r in d.get("horizons", [])]
        return _table(["horizon", "kind", "loss [95% CI]", "of trivial [95% CI]"], rows, {2, 3}) + (
            f"<p class='muted'>{_e(d.get('note', ''))}</p>" if d.get("note") else "")
    if m.measure == "decompose":
        split = d.get("split", {})
        keys = [k for k in split if k.startswith("all:") or k in ("embeddings", "head", "total")]
        rows = [[k.replace("all:", ""), f"{split[k]['myopic_share']:.3f}", f"{split[k]['future_share']:.3f}",
                 f"{split[k]['cos_myopic_future']:.3f}"] for k in keys]
        return _table(["parameters", "own loss G(0) share", "later losses share", "cos(G(0), future)"], rows, {1, 2, 3})
    if m.measure == "bonus":
        rows = [[v.get("policy", k), f"{v['bonus_loss']:.4f}", f"{v['bonus']['mean']:+.4f} {format_ci(v['bonus'])}"]
                for k, v in d.get("variants", {}).items()]
        return (f"<p>L(θ0) = {d['base_loss']:.4f}; trivial {d['trivial_loss']:.4f}</p>"
                + _table(["variant", "L(φ*)", "bonus [95% CI]"], rows, {1, 2}))
    if m.measure == "sweep":
        from myopia.measures.multiplier import format_multiplier

        variants = list(d.get("labels", {}))
        ks = {v: {k["size"]: k for k in d["multiplier"][v]} for v in variants}
        head, right = ["size", "params", "compute C", "vanilla"], {1, 2, 3}
        for v in variants:
            right |= {len(head), len(head) + 1, len(head) + 2}
            head += [f"{v}: myopic", f"{v}: gap [95% CI]", f"{v}: k"]
        rows = [[s["size"], f"{s['params']:,}", f"{s['compute']:.2g}", f"{s['vanilla']['mean']:.3f}",
                 *(x for v in variants for x in (f"{s[v]['myopic']['mean']:.3f}",
                                                 f"{s[v]['gap']['mean']:+.3f} {format_ci(s[v]['gap'], '+.3f')}",
                                                 format_multiplier(ks[v][s['size']])))]
                for s in d.get("sizes", [])]
        labels = "".join(f"<li>{_e(v)} = {_e(label)}: {_e(d['trend'][v])}</li>" for v, label in d["labels"].items())
        return _table(head, rows, right) + f"<ul class='muted'>{labels}</ul>"
    return _table(["quantity", "value"], [list(r) for r in _scalar_summary(d)], {1})


def _scalar_summary(data: dict, limit: int = 24) -> list[tuple[str, str]]:
    """The scalar numbers of an unknown measure's results.json (numbers, mean/CI dicts, short lists)."""
    rows = []
    for key, val in data.items():
        if key in ("provenance", "curves", "measure"):
            continue
        if isinstance(val, bool) or isinstance(val, str):
            rows.append((key, str(val)))
        elif isinstance(val, (int, float)):
            rows.append((key, f"{val:.4g}"))
        elif isinstance(val, dict) and "mean" in val and "ci95" in val:
            rows.append((key, f"{val['mean']:.4g} {format_ci(val, '.4g')}"))
        elif isinstance(val, list) and val and len(val) <= 8 and all(isinstance(v, (int, float)) for v in val):
            rows.append((key, ", ".join(f"{v:.4g}" for v in val)))
        if len(rows) >= limit:
            break
    return rows


def _explain_links(root: Path) -> str:
    items = []
    for js in sorted(root.rglob("explain.json")):
        page_path = js.with_name("explain.html")
        if not page_path.exists():
            continue
        try:
            data = json.loads(js.read_text())
            gaps = ", ".join(f"{p['mean_gap']:+.3f}" for p in data.get("prompts", [])[:6])
        except (OSError, ValueError, KeyError, TypeError):
            gaps = "?"
        rel = page_path.relative_to(root).as_posix()
        items.append(f"<li><a href='{_e(rel)}'>{_e(rel)}</a> — mean gap per prompt: {_e(gaps)} nats/token</li>")
    if not items:
        return ""
    return "<h2>Token views</h2><p>Pages written by <code>myopia explain</code> below this directory:</p><ul>" + "".join(items) + "</ul>"


# ---------------------------------------------------------------------- the page
def build_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html``; returns its path."""
    root = Path(run_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory; give the --out directory of a myopia command")
    measures = _ordered([_load(root, d) for d in _measure_dirs(root)])
    tracked = _tracked_runs(root)
    if not measures and not tracked:
        raise FileNotFoundError(f"{root} holds no results.json and no training metrics; is it a myopia output directory?")
    from myopia.report.decompose_plots import plot_gradient_tracking_from_run
    from myopia.report.figures import draw

    for run in tracked:
        plot_gradient_tracking_from_run(run)
    for m in measures:
        draw({**m.data, "measure": m.measure}, m.dir)

    gaps = [m for m in measures if m.measure == "gap"]
    parts = [f"<h1>myopia report</h1><p class='muted mono'>{_e(root)}</p>"]
    parts.append("<h2>What was found</h2>")
    if gaps:
        parts.append(headline_table(gaps))
    parts.append("<ul class='findings'>" + "".join(
        f"<li>{_e(finding(m.measure, m.data))} <a class='no-print' href='#{m.anchor}'>details</a></li>" for m in measures)
        + "</ul>")
    for m in measures:
        parts.append(f"<h2 id='{m.anchor}'>{_e(m.title)}</h2><p>{_e(finding(m.measure, m.data))}</p>")
        parts.append(_numbers(m))
        parts.extend(_figure(png, root) for png in sorted(m.dir.glob("*.png")))
    if tracked:
        parts.append("<h2>Gradient tracking (myopic vs future gradient during training)</h2>")
        for run in tracked:
            parts.append(f"<h3>{_e(run.relative_to(root).as_posix())}</h3>" + _figure(run / "gradient_tracking.png", root))
    parts.append(_explain_links(root))
    parts.append("<h2>Settings and provenance</h2>")
    for m in measures:
        blocks = [f"<details><summary>{_e(m.title)}: config</summary><pre>{_e(json.dumps(m.config, indent=2))}</pre></details>"
                  if m.config else ""]
        if "provenance" in m.data:
            blocks.append(f"<details><summary>{_e(m.title)}: provenance</summary>"
                          f"<pre>{_e(json.dumps(m.data['provenance'], indent=2))}</pre></details>")
        parts.extend(blocks)
    out = root / "report.html"
    atomic_write_text(out, page(f"myopia report: {root.name}", "\n".join(p for p in parts if p)))
    return out
