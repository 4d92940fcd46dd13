#!/usr/bin/env bash
# Regenerates the raw outputs the README quotes, one command per result; the comment gives
# the expected wall time on 2 CPU cores. Run from the repository root with the package
# installed (bash scripts/demo.sh sets it up).
set -euo pipefail

# myopia demo: the gap table, myopia-demo/{precache,breadcrumbs,text}/results.json, report.html (~4-8 min)
myopia demo --out myopia-demo
# myopia explain: the five held-out text windows where the strictly myopic model loses most (~30 s)
myopia explain --find 5 --gap-dir myopia-demo/text --out docs/results/explain --overwrite
# README screenshots docs/img/{report,explain}.png (~15 s; needs Chromium: apt-get install -y chromium)
python scripts/screenshots.py myopia-demo/report.html docs/results/explain/explain.html docs/img
