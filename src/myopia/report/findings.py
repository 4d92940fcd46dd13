"""What a measurement found, in numbers and in one sentence, computed from its results.json.

``gap_rows`` is the demo's table (one row per task and myopic variant), shared by the
terminal (``myopia gap``/``myopia demo``) and ``report.html``. ``finding(measure, data)``
states in one sentence what a measure found; every word that judges (necessary, within
seed noise, extrapolated) follows from the numbers by the rules written next to it.
"""

from __future__ import annotations

from myopia.results import format_ci, format_share

DEMO_ORDER = ("precache", "breadcrumbs", "text")
VARIANT_WORDS = {"kv": "strict myopia (kv)", "hidden": "the paper's myopia (hidden)"}
LEARNS = 0.5  # vanilla "learns" the task below this share of the trivial loss
STAYS = 0.9  # a myopic model "stays" near the trivial loss above this share


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def task_name(data: dict) -> str:
    task = data.get("task")
    return task.get("name", "task") if isinstance(task, dict) else str(task or "task")


def gap_rows(data) -> list[dict]:
    """One row per myopic variant of a gap result (its results.json dict or the GapResult):
    task, policy, detach, mean vanilla/myopic loss over seeds, their share of the trivial loss, gap stat."""
    d = data if isinstance(data, dict) else data.to_dict()
    triv = d["trivial_loss"]
    van = _mean(d["vanilla_loss"])
    rows = []
    for detach, var in d["variants"].items():
        myo = _mean(var["myopic_loss"])
        rows.append({
            "task": task_name(d), "policy": var["policy"], "detach": detach, "vanilla": van, "myopic": myo,
            "trivial": triv, "vanilla_rel": van / triv if triv else None, "myopic_rel": myo / triv if triv else None,
            "gap": var["gap"],
        })
    return rows


def demo_order(names: list[str]) -> list[int]:
    """Indices of ``names`` (task names) in the demo's order, others after it in their given order."""
    rank = {n: k for k, n in enumerate(DEMO_ORDER)}
    return sorted(range(len(names)), key=lambda i: (rank.get(names[i], len(DEMO_ORDER)), i))


def _ci_state(stat: dict) -> str:
    """'above' (95% CI above 0), 'below', 'includes' (0 inside), or 'none' (one seed)."""
    ci = stat.get("ci95")
    if ci is None:
        return "none"
    return "above" if ci[0] > 0 else "below" if ci[1] < 0 else "includes"


def gap_finding(data: dict) -> str:
    """What a gap measurement found (:func:`gap_verdict`), with the feature probe's R² when
    the task has a known feature."""
    return gap_verdict(data) + feature_clause(data)


def gap_verdict(data: dict) -> str:
    """E.g. 'precache: vanilla reaches 5% of the trivial loss, strict myopia (kv) 98% and the
    paper's myopia (hidden) 99% — pre-caching is necessary here: ...'.

    Rules: *necessary* when vanilla learns (< 50% of trivial), every myopic variant stays
    (> 90%) and every gap's 95% CI lies above 0; *within seed noise* when every CI includes
    0; otherwise each variant is named by where its CI lies. One seed: no judgement."""
    rows = gap_rows(data)
    name = rows[0]["task"]
    parts = [f"{VARIANT_WORDS.get(r['detach'], r['policy'])} {format_share(r['myopic_rel'])}" for r in rows]
    head = f"{name}: vanilla reaches {format_share(rows[0]['vanilla_rel'])} of the trivial loss, " + " and ".join(parts)
    states = {r["detach"]: _ci_state(r["gap"]) for r in rows}
    if all(s == "none" for s in states.values()):
        gaps = ", ".join(f"{r['gap']['mean']:+.4f}" for r in rows)
        return f"{head} — one seed, so no interval: gap {gaps}; run more seeds before reading a difference."
    learned = rows[0]["vanilla_rel"] is not None and rows[0]["vanilla_rel"] < LEARNS
    stays = all(r["myopic_rel"] is not None and r["myopic_rel"] > STAYS for r in rows)
    if learned and stays and all(s == "above" for s in states.values()):
        return f"{head} — pre-caching is necessary here: training for the present does not learn what vanilla learns."
    if all(s == "includes" for s in states.values()):
        return (f"{head} — no gap beyond seed noise (every 95% CI includes 0): training for the present learns what "
                f"vanilla learns here (breadcrumbs suffice).")
    clauses = []
    for r in rows:
        s, g = states[r["detach"]], r["gap"]
        what = {"above": "worse than vanilla", "below": "better than vanilla", "includes": "within seed noise of vanilla",
                "none": "one seed, no interval"}[s]
        clauses.append(f"{VARIANT_WORDS.get(r['detach'], r['policy'])} is {what} (gap {g['mean']:+.4f} {format_ci(g)})")
    return f"{head} — " + "; ".join(clauses) + "."


FEATURE_LAYER = "1"  # the state after block 1: where a pre-cached feature must be for block 2 to read it


def feature_r2_text(data: dict, policy: str) -> str:
    """The feature probe's held-out R² after block 1 of every seed of ``policy``, e.g.
    '0.95/0.97/0.96'; '-' when the task has no known feature."""
    per_seed = (data.get("feature_r2") or {}).get(policy, {}).get("per_seed")
    return "/".join(f"{row[FEATURE_LAYER]:.2f}" for row in per_seed) if per_seed else "-"


def feature_clause(data: dict) -> str:
    """' The probe for the task's feature after block 1 (held-out R², per seed): vanilla
    0.95/0.97/0.96, strict myopia (kv) 0.00/...' — empty when the task has no known feature."""
    if "vanilla" not in (data.get("feature_r2") or {}):
        return ""
    names = [("vanilla", "vanilla")] + [(var["policy"], VARIANT_WORDS.get(d, var["policy"]))
                                        for d, var in data.get("variants", {}).items()]
    parts = [f"{label} {feature_r2_text(data, policy)}" for policy, label in names]
    return " The probe for the task's feature after block 1 (held-out R², per seed): " + ", ".join(parts) + "."


def horizon_finding(data: dict) -> str:
    """Loss at the smallest horizon and with vanilla gradients, and the restricted horizon closest to vanilla."""
    rows = data.get("horizons", [])
    if not rows:
        return f"{task_name(data)}: no horizons measured."
    van = next((r for r in rows if r.get("kind") == "vanilla"), None)
    restricted = [r for r in rows if r.get("kind") != "vanilla"]
    first = restricted[0] if restricted else rows[0]
    text = f"{task_name(data)}: held-out loss is {format_share(first.get('relative_to_trivial'))} of the trivial loss at h = {first['horizon']}"
    if van is not None:
        text += f" and {format_share(van.get('relative_to_trivial'))} with vanilla gradients"
        if len(restricted) > 1:
            best = min(restricted, key=lambda r: r["loss"]["mean"])
            text += f"; among restricted horizons h = {best['horizon']} comes closest ({format_share(best.get('relative_to_trivial'))})"
    return text + " (a band horizon is per attention hop)."


def _top_offsets(profile_row: dict, offsets: list[str], k: int = 2) -> list[tuple[str, float]]:
    pairs = [(o, s) for o, s in zip(offsets[1:], profile_row["share"][1:]) if s == s]
    return sorted(pairs, key=lambda p: -p[1])[:k]


def decompose_finding(data: dict) -> str:
    """Future share of the W_K/W_V gradient (and where it sits in tau) and of the whole gradient."""
    split = data.get("split", {})
    kv = split.get("all:W_K+W_V")
    total = split.get("total")
    if total is None:
        return f"{task_name(data)}: no gradient split in this result."
    text = f"{task_name(data)}: "
    if kv is not None:
        text += f"W_K and W_V get {kv['future_share']:.0%} of their gradient from later losses (τ ≥ 1)"
        row = data.get("profile", {}).get("all:W_K+W_V")
        if row:
            tops = _top_offsets(row, data.get("offsets", []))
            if tops:
                text += ", mostly at " + ", ".join(f"τ = {o} ({s:.0%})" for o, s in tops)
        text += "; "
    return text + f"over all parameters the future share is {total['future_share']:.0%}."


def bonus_finding(data: dict) -> str:
    """The local myopia bonus with its interval; says whether an equal-budget control is in the result."""
    b = data.get("bonus", {})
    if "mean" not in b:
        return f"{task_name(data)}: no bonus in this result."
    state = _ci_state(b)
    what = {"above": "lowers", "below": "raises", "includes": "does not change beyond batch noise",
            "none": "changes"}[state]
    text = (f"{task_name(data)}: re-optimising each position's computation for its own loss (the past frozen) {what} "
            f"the held-out loss: bonus L(θ0) − L(φ*) = {b['mean']:+.4f} {format_ci(b)}")
    if "control_loss" in data:
        text += f", against an equal-budget control at {data['control_loss']:.4f}"
    else:
        text += "; no equal-budget control in this result, so part of it may be the extra training"
    return text + "."


def sweep_finding(data: dict) -> str:
    """Per myopic variant: the gap at the smallest and largest size and whether k changes with
    scale (k is read off the measured curves only: interpolated or a bound)."""
    sizes = data.get("sizes", [])
    if not sizes:
        return "sweep: no sizes measured."
    lo, hi = sizes[0], sizes[-1]
    parts = []
    for d, label in data["labels"].items():
        parts.append(f"{label}: the gap goes from {lo[d]['gap']['mean']:+.3f} {format_ci(lo[d]['gap'], '+.3f')} at "
                     f"{lo['size']} to {hi[d]['gap']['mean']:+.3f} {format_ci(hi[d]['gap'], '+.3f')} at {hi['size']}; "
                     f"{data['trend'][d]}")
    return "sweep: " + ". ".join(parts) + "."


FINDINGS = {
    "gap": gap_finding,
    "horizon": horizon_finding,
    "decompose": decompose_finding,
    "bonus": bonus_finding,
    "sweep": sweep_finding,
}


def finding(measure: str, data: dict) -> str:
    """One sentence for a measure's results.json; a plain pointer for measures without a rule."""
    fn = FINDINGS.get(measure)
    if fn is None:
        return f"{measure}: the numbers are below (no summary rule for this measure)."
    try:
        return fn(data)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError) as e:  # an older or partial results.json
        return f"{measure}: the numbers are below (no summary: results.json lacks {e})."
