#!/usr/bin/env bash
# Regenerate the raw results the README quotes, committed under docs/results/ and docs/img/
# (one command per result; the comment gives its run time on 2 CPU cores). Run from the
# repository root; the first line sets up (or reuses) the virtual environment.
set -euo pipefail
. "$(dirname "$0")/env.sh"

# docs/results/consequences — output-side myopia on the branching source (~1.2 CPU-minutes;
# 4 min 17 s wall with --workers 1 on 2 cores shared with other jobs, load ~17)
myopia consequences --out runs/consequences --overwrite --no-progress
cp runs/consequences/{results.json,config.json,consequences.png} docs/results/consequences/

# myopia demo: the gap table, myopia-demo/{precache,breadcrumbs,text}/results.json, report.html (~4-8 min)
myopia demo --out myopia-demo
# myopia explain: the five held-out text windows where the strictly myopic model loses most (~30 s)
myopia explain --find 5 --gap-dir myopia-demo/text --out docs/results/explain --overwrite
# README screenshots docs/img/{report,explain}.png (~15 s; needs Chromium: apt-get install -y chromium)
python scripts/screenshots.py myopia-demo/report.html docs/results/explain/explain.html docs/img

# docs/results/planning: the myopia gap on rhyming couplets, overall, at the line break and
# at the rhyming ending; strict and paper myopia; transformer-bigram reference (~25 min)
myopia gap --task planning --detach kv,hidden --baseline bigram --seeds 3 --out runs/planning --resume
mkdir -p docs/results/planning && cp runs/planning/{results.json,config.json,gap.png} docs/results/planning/

# docs/results/multiply: exact match vs filler tokens, vanilla / strict / paper myopia, 3 seeds (~60 min)
bash scripts/multiply_fillers.sh
