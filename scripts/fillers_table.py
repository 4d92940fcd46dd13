"""Table of exact-match accuracy vs filler count from the `myopia gap` outputs of a fillers sweep.

    python scripts/fillers_table.py docs/results/multiply     # reads fillers-*/results.json

Prints a markdown table: one row per filler count, per run name (vanilla, strict myopic,
the paper's hidden myopic, transformer bigram) the mean exact match over seeds with its
two-level bootstrap 95% interval, and the answer-position loss; "–" where a run was not trained.
Accuracy is printed with three decimals: the myopic and bigram shares are a few percent.
Then, per filler count, the loss at each answer digit with each myopic variant's gap to vanilla.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from myopia.policy import VARIANT_LABELS
from myopia.results import format_ci

NAMES = {"vanilla": "vanilla", "myopic": VARIANT_LABELS["kv"], "myopic-hidden": VARIANT_LABELS["hidden"],
         "bigram": "bigram (reads no past)"}


def main(root: str) -> str:
    results = sorted((json.loads(p.read_text()) for p in Path(root).glob("fillers-*/results.json")),
                     key=lambda r: r["task"]["fillers"])
    if not results:
        raise SystemExit(f"no fillers-*/results.json under {root}")
    names = [n for n in NAMES if any(n in r["accuracy"] for r in results)]
    lines = ["| fillers | " + " | ".join(NAMES[n] for n in names) + " |", "|---" * (len(names) + 1) + "|"]
    for r in results:
        cells = []
        for n in names:
            if n not in r["accuracy"]:  # the bigram reference is trained at one filler count only
                cells.append("–")
                continue
            acc, loss = r["accuracy"][n], r["position_gaps"]["answer"][n]["loss"]["mean"]
            cells.append(f"{acc['mean']:.3f} {format_ci(acc, '.3f')} (loss {loss:.2f})")
        lines.append(f"| {r['task']['fillers']} | " + " | ".join(cells) + " |")
    r = results[0]
    lines.append(f"\nexact match of the answer (mean over {len(r['seeds'])} seeds [two-level bootstrap 95% CI]), "
                 f"in brackets the mean loss per answer digit (nats; the digits' marginal law, which knows the layout "
                 f"but not the operands: {r['trivial_loss']:.2f}); task {r['task']['digits_a']}x{r['task']['digits_b']} "
                 f"digits, {r['train']['steps']} steps of {r['train']['batch_size']}")
    for r in results:
        lines += ["", *digit_table(r)]
    return "\n".join(lines)


def digit_table(r: dict) -> list[str]:
    """Loss per answer digit (units first) of one filler count: where each variant falls short.
    Myopic cells give the loss and its gap to vanilla [95% CI over seeds]."""
    pos = r["position_gaps"]["answer"]["positions"]  # input positions whose targets are the answer digits
    variants = {v["policy"]: v for v in r["variants"].values()}
    cols = ["marginal law", "vanilla", *(NAMES[n] for n in variants), *(["bigram (reads no past)"] if r.get("bigram_per_position") else [])]
    lines = [f"| answer digit ({r['task']['fillers']} fillers) | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for d, t in enumerate(pos):
        cells = [f"{r['trivial_loss_per_position'][t]:.2f}", f"{r['vanilla_per_position'][t]:.2f}"]
        for v in variants.values():
            gap = {"ci95": v["per_position_gap_ci95"][t]}
            cells.append(f"{v['myopic_per_position'][t]:.2f} (gap {v['per_position_gap'][t]:+.2f} {format_ci(gap, '+.2f')})")
        if r.get("bigram_per_position"):
            cells.append(f"{r['bigram_per_position'][t]:.2f}")
        lines.append(f"| 10^{d} | " + " | ".join(cells) + " |")
    lines.append("\nloss per answer digit (nats, mean over seeds), least significant digit first; teacher-forced")
    return lines


if __name__ == "__main__":
    print(main(sys.argv[1] if len(sys.argv) > 1 else "docs/results/multiply"))
