"""Table of exact-match accuracy vs filler count from the `myopia gap` outputs of a fillers sweep.

    python scripts/fillers_table.py docs/results/multiply     # reads fillers-*/results.json

Prints a markdown table: one row per filler count, per run name (vanilla, strict myopic,
the paper's hidden myopic, transformer bigram) the mean exact match over seeds with its
two-level bootstrap 95% interval, and the answer-position loss; "–" where a run was not trained.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from myopia.results import format_ci

NAMES = {"vanilla": "vanilla", "myopic": "myopic (strict, kv)", "myopic-hidden": "myopic (paper, hidden)",
         "bigram": "bigram (no past)"}


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
            cells.append(f"{acc['mean']:.2f} {format_ci(acc, '.2f')} (loss {loss:.2f})")
        lines.append(f"| {r['task']['fillers']} | " + " | ".join(cells) + " |")
    r = results[0]
    lines.append(f"\nexact match of the answer (mean over {len(r['seeds'])} seeds [two-level bootstrap 95% CI]), "
                 f"in brackets the mean loss per answer digit; task {r['task']['digits_a']}x{r['task']['digits_b']} "
                 f"digits, {r['train']['steps']} steps of {r['train']['batch_size']}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main(sys.argv[1] if len(sys.argv) > 1 else "docs/results/multiply"))
