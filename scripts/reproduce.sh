#!/usr/bin/env bash
# Regenerate the committed results quoted in README.md, one command per result, with the
# wall time each took on the project's 2-core CPU machine (shared with other jobs) in a comment.
# Each command reuses finished runs (--resume), so a killed reproduction continues.
. "$(dirname "$0")/env.sh"

# docs/results/planning: the myopia gap on rhyming couplets, overall, at the line break and
# at the rhyming ending; strict and paper myopia; transformer-bigram reference (~25 min)
myopia gap --task planning --detach kv,hidden --baseline bigram --seeds 3 --out runs/planning --resume
mkdir -p docs/results/planning && cp runs/planning/{results.json,config.json,gap.png} docs/results/planning/

# docs/results/multiply: exact match vs filler tokens, vanilla / strict / paper myopia, 3 seeds (~60 min)
bash scripts/multiply_fillers.sh
