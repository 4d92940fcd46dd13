#!/usr/bin/env bash
# Exact-match accuracy of reversed-digit multiplication vs the number of filler tokens before
# the answer: vanilla, strict myopic (kv) and the paper's myopic (hidden) training, 3 seeds
# each, and the transformer-bigram reference (reads no past) at 0 fillers.
# Runs (checkpoints) go to runs/multiply-fillers/ (not committed); results.json, config.json
# and gap.png are copied to docs/results/multiply/fillers-N/ and the table to
# docs/results/multiply/table.md. Needs `myopia` and `python` from the project's environment
# (scripts/reproduce.sh sources scripts/env.sh). Extra arguments go to every `myopia gap`
# (e.g. --workers 1). Finished runs are reused, so a killed sweep continues where it stopped.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${RUNS:-$ROOT/runs/multiply-fillers}"
DOCS="${DOCS:-$ROOT/docs/results/multiply}"
FILLERS="${FILLERS:-0 4 8}"
SETTINGS=(--digits-a 2 --digits-b 2 --seeds 3 --detach kv,hidden
          --steps 2000 --batch-size 64 --lr 3e-3 --warmup-steps 50 --eval-every 250 --test-batches 16)
for n in $FILLERS; do
    baseline=()
    if [ "$n" = 0 ]; then baseline=(--baseline bigram); fi
    myopia gap --task multiply --fillers "$n" "${SETTINGS[@]}" "${baseline[@]}" --out "$RUNS/fillers-$n" --resume "$@"
    mkdir -p "$DOCS/fillers-$n"
    cp "$RUNS/fillers-$n"/{results.json,config.json,gap.png} "$DOCS/fillers-$n/"
done
python "$ROOT/scripts/fillers_table.py" "$DOCS" | tee "$DOCS/table.md"
