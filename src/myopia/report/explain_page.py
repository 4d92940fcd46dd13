"""explain.html: one file with the prompt(s) of an ``explain.json`` as coloured tokens.

The page holds its data (the whole explain.json), its style and its script inline: it
opens from disk with no server and no network. Colour = the per-token gap (compared -
reference loss on the next token), on a diverging, colour-blind-safe scale (purple -
white - orange, the ends of PuOr) centred at zero; hovering a token gives the exact
numbers, clicking it opens its detail panel (losses and top-5 of both models, the
future-gradient split by offset, the earlier positions it reads, probes).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from myopia.report.document import inline_json, page, static_text
from myopia.results import atomic_write_text

SUMMARY_ROWS = 12
GAP_SCALE_QUANTILE = 0.98  # colours saturate beyond this quantile of |gap|, so one outlier does not wash out the rest

POLICY_WORDS = {
    "vanilla": "vanilla training",
    "myopic": "strict myopia, detach=kv: past keys/values are constants",
    "myopic-hidden": "the paper's myopia, detach=hidden: past attention inputs are constants, W_K/W_V still learn from later losses",
}


def _gap_scale(result: dict) -> float:
    gaps = sorted(abs(t["gap"]) for p in result["prompts"] for t in p["tokens"] if t["gap"] is not None)
    if not gaps:
        return 1.0
    q = gaps[min(len(gaps) - 1, int(GAP_SCALE_QUANTILE * (len(gaps) - 1) + 0.5))]
    return max(q, 1e-6)


def _model_words(m: dict) -> str:
    return f"{html.escape(m['label'])} ({html.escape(POLICY_WORDS.get(m['policy'], m['policy']))})"


def _header(result: dict, scale: float) -> str:
    van, myo = result["models"]["vanilla"], result["models"]["myopic"]
    src = result["source"]
    if "gap_dir" in src:
        where = (f"runs of <code>{html.escape(src['gap_dir'])}</code>, seed {src['seed']}; compared variant: "
                 f"<b>{'strict myopia (detach=kv)' if src['variant'] == 'kv' else 'the paper’s myopia (detach=hidden)'}</b>")
    else:
        where = "models " + ", ".join(f"<code>{html.escape(p)}</code>" for p in src.get("models", []))
    parts = [
        f"<h1>Token by token: {html.escape(myo['label'])} vs {html.escape(van['label'])}</h1>",
        f"<p class='lead'>Each token is coloured by the gap on the token that follows it: how much worse "
        f"(<span style='color:#b35806'>orange</span>) or better (<span style='color:#5e3c99'>purple</span>) the compared model "
        f"{_model_words(myo)} predicts it than the reference {_model_words(van)}, in nats. Hover a token for the exact "
        f"numbers; click it for its details.</p>",
        f"<p class='muted'>{where}.</p>",
        "<div class='legend' aria-label='colour scale'><span>myopic better</span>"
        f"<span class='bar' style='background:linear-gradient(90deg,#5e3c99,#f7f7f7,#e66101)'></span><span>myopic worse</span>"
        f"<span class='mono'>−{scale:.2f} … 0 … +{scale:.2f} nats (beyond: full colour)</span>"
        "<span class='tok last' style='line-height:1.2'>last</span><span>no next token</span></div>",
    ]
    search = result.get("search")
    if search:
        lo, med, hi = search["gap_q05_median_q95"]
        parts.append(
            f"<p><b>Where the compared model loses most.</b> "
            + (f"These are the {len(search['selected'])} of {search['windows']} held-out windows" if len(search["selected"]) > 1
               else f"This is the one of {search['windows']} held-out windows")
            + f" ({search['window_tokens']} tokens, {html.escape(search['split'])} split) "
            f"with the largest mean gap: a selection from the tail, not typical text. Over all {search['windows']} windows "
            f"the mean gap is {search['mean_gap']:+.3f} nats per token (median {med:+.3f}, 5%–95%: {lo:+.3f} … {hi:+.3f}).</p>"
        )
    note = result.get("probes", {}).get("note")
    if note:
        parts.append(f"<p class='note'>Probes: {html.escape(note)}.</p>")
    return "\n".join(parts)


def _footer(result: dict) -> str:
    defs = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in result["definitions"].items())
    settings = {k: result.get(k) for k in ("models", "source", "task", "tokenizer", "context", "probes")}
    return (
        f"<h2>Definitions</h2><div class='scroll'><table>{defs}</table></div>"
        f"<details><summary>settings</summary><pre>{html.escape(json.dumps(settings, indent=2))}</pre></details>"
        f"<details><summary>provenance</summary><pre>{html.escape(json.dumps(result.get('provenance', {}), indent=2))}</pre></details>"
    )


def render_explain(result: dict) -> str:
    """The HTML text of the page for an explain result (``ExplainResult.to_dict()`` or explain.json)."""
    scale = _gap_scale(result)
    data = {**result, "view": {"gap_scale": scale, "summary_rows": SUMMARY_ROWS}}
    body = (
        _header(result, scale)
        + "\n<noscript><p>This page draws its tokens with JavaScript; the numbers are in explain.json.</p></noscript>"
        + "\n<div id='explain'></div>\n"
        + _footer(result)
    )
    script = (f"<script type='application/json' id='explain-data'>{inline_json(data)}</script>\n"
              f"<script>\n{static_text('explain.js')}\n</script>")
    van, myo = result["models"]["vanilla"]["label"], result["models"]["myopic"]["label"]
    return page(f"myopia explain: {myo} vs {van}", body, css=("base.css", "explain.css"), script=script)


def write_explain_page(result, out_dir: str | Path) -> Path:
    """Write ``out_dir/explain.html`` for an ExplainResult (or its dict); returns the path."""
    data = result if isinstance(result, dict) else result.to_dict()
    path = Path(out_dir) / "explain.html"
    atomic_write_text(path, render_explain(data))
    return path
