#!/usr/bin/env bash
# Regenerate the raw results committed under docs/results/ (one command per result; the
# comment gives its run time on the 2-core reference machine). Run from anywhere; each
# command writes runs/<name>/ and copies its results.json, config.json and figures over the
# committed ones.
. "$(dirname "$0")/env.sh"

# docs/results/consequences — output-side myopia on the branching source (~1.2 CPU-minutes;
# 4 min 17 s wall with --workers 1 on 2 cores shared with other jobs, load ~17)
myopia consequences --out runs/consequences --overwrite --no-progress
cp runs/consequences/{results.json,config.json,consequences.png} docs/results/consequences/
