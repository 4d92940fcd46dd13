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

# myopia demo: the gap table, myopia-demo/{precache,breadcrumbs,text}/results.json, report.html (~4-8 min);
# docs/results/demo keeps the raw output of the README's demo table
myopia demo --out myopia-demo
for t in precache breadcrumbs text; do mkdir -p docs/results/demo/$t && cp myopia-demo/$t/{results.json,config.json,gap.png} docs/results/demo/$t/; done
# docs/results/probe-precache, docs/results/probe: the feature probe and future-token probes of the
# demo's precache and text models, each with its causal test (~1 min, ~10 min)
myopia probe --gap-dir myopia-demo/precache --out runs/probe-precache --overwrite --no-progress
mkdir -p docs/results/probe-precache && cp runs/probe-precache/{results.json,config.json,probe.png} docs/results/probe-precache/
myopia probe --gap-dir myopia-demo/text --out runs/probe --overwrite --no-progress
mkdir -p docs/results/probe && cp runs/probe/{results.json,config.json,probe.png} docs/results/probe/
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

# docs/results/bonus, docs/results/bonus-trained — local myopia bonus of a tiny GPT-2 against its
# equal-budget control. θ0 is the vanilla run of `myopia gap` from a random tiny GPT-2
# (make-tiny, seed 0) after 30 steps (bonus) or 300 steps (bonus-trained) at lr 3e-3 on the
# built-in corpus; φ and the control θ0′ then train 30 steps each. Wall times with one thread
# on 2 cores shared with other jobs (load ~12): gaps 2 and 4 min, bonuses 3 and 2 min.
rm -rf runs/tiny-gpt2 && python -m myopia.hf make-tiny runs/tiny-gpt2
myopia gap --model runs/tiny-gpt2 --data stdlib-docstrings --seeds 1 --steps 30 --lr 3e-3 --threads 1 --workers 1 --out runs/bonus-theta0-30 --overwrite --no-progress
myopia bonus --model runs/bonus-theta0-30/runs/vanilla-seed0 --data stdlib-docstrings --steps 30 --eval-every 10 --detach kv,hidden --threads 1 --out runs/bonus --overwrite --no-progress
cp runs/bonus/{results.json,config.json,bonus.png} docs/results/bonus/
myopia gap --model runs/tiny-gpt2 --data stdlib-docstrings --seeds 1 --steps 300 --lr 3e-3 --threads 1 --workers 1 --out runs/bonus-theta0-300 --overwrite --no-progress
myopia bonus --model runs/bonus-theta0-300/runs/vanilla-seed0 --data stdlib-docstrings --steps 30 --eval-every 10 --detach kv,hidden --threads 1 --out runs/bonus-trained --overwrite --no-progress
cp runs/bonus-trained/{results.json,config.json,bonus.png} docs/results/bonus-trained/

# docs/results/doc-start — per-position gap with every context starting at a document's first
# token, built-in corpus (one document per module: 581/32/32 contexts), the demo's text
# settings, 3 seeds, both variants (30 min wall with --workers 1, load ~12; ~10 CPU-minutes)
myopia gap --task text --doc-start --seq-len 64 --seeds 3 --detach kv,hidden --steps 300 --lr 3e-3 --warmup-steps 30 --eval-every 100 --test-batches 1 --threads 1 --workers 1 --out runs/doc-start --overwrite --no-progress
cp runs/doc-start/{results.json,config.json,gap.png} docs/results/doc-start/

# docs/results/doc-start-paragraphs — the same with the built-in corpus split into paragraphs
# (16,361 documents: 14,724/817/817 contexts), so position 0 is measured on 817 test documents
# (20 min wall with --workers 1, load ~12)
mkdir -p runs
python -c "from myopia.data.corpus import open_corpus; open('runs/stdlib-paragraphs.txt', 'w').write('\n\n'.join(open_corpus().documents()))"
myopia gap --task text --data runs/stdlib-paragraphs.txt --doc-start --seq-len 64 --seeds 3 --detach kv,hidden --steps 300 --lr 3e-3 --warmup-steps 30 --eval-every 100 --test-batches 25 --threads 1 --workers 1 --out runs/doc-start-paragraphs --overwrite --no-progress
cp runs/doc-start-paragraphs/{results.json,config.json,gap.png} docs/results/doc-start-paragraphs/

# docs/results/sweep-multiplier: the compute multiplier of the committed sweeps (docs/sweep,
# docs/sweep/hidden) read off the measured curves, no retraining (~20 s)
python scripts/sweep_multiplier.py docs/results/sweep-multiplier/results.json

# docs/results/breadcrumbs-k8: why the breadcrumbs control keeps window K = 2 — at K = 8 the
# myopic models learn it too slowly for the demo's budget (~6 min)
myopia gap --task breadcrumbs --window 8 --detach hidden,kv --seeds 3 --out runs/breadcrumbs-k8 --resume --no-progress
mkdir -p docs/results/breadcrumbs-k8 && cp runs/breadcrumbs-k8/{results.json,config.json,gap.png} docs/results/breadcrumbs-k8/

# docs/results/precache-read: the former precache preset (K = 2), which vanilla learns by reading
# the raw past instead of pre-caching (feature probe R² per model in results.json; ~4 min)
myopia gap --task precache-read --detach kv --seeds 3 --out runs/precache-read --resume --no-progress
mkdir -p docs/results/precache-read && cp runs/precache-read/{results.json,config.json,gap.png} docs/results/precache-read/

# docs/results/horizon-precache-read, docs/results/horizon-breadcrumbs: loss vs gradient horizon,
# 5 seeds; strict myopia (kv) on precache-read, the paper's variant (hidden) on the breadcrumbs
# control (wall with --workers 2 --threads 1 on 2 cores shared with an unlocked job: precache-read 12.5 min;
# breadcrumbs not yet timed, about the same)
myopia horizon --task precache-read --horizons 0,1,2,4,8,inf --seeds 5 --workers 2 --threads 1 --out runs/horizon-precache-read --overwrite --no-progress
mkdir -p docs/results/horizon-precache-read && cp runs/horizon-precache-read/{results.json,config.json,horizon.png} docs/results/horizon-precache-read/
myopia horizon --task breadcrumbs --detach hidden --horizons 0,1,2,4,8,inf --seeds 5 --workers 2 --threads 1 --out runs/horizon-breadcrumbs --overwrite --no-progress
mkdir -p docs/results/horizon-breadcrumbs && cp runs/horizon-breadcrumbs/{results.json,config.json,horizon.png} docs/results/horizon-breadcrumbs/

# docs/results/decompose-precache-read: offset decomposition of a vanilla precache-read model
# (trained here, T = 16, 1500 steps with gradient tracking; 16 min with 2 threads on 2 cores shared with an unlocked job); docs/results/decompose-context-lengths:
# the future share of the W_K+W_V gradient at N = 8, 32, 128 of a precache-read model trained at
# T = 128 (not yet timed: 8x the positions of the T = 16 run, so expect well over an hour on 2 cores)
myopia decompose --task precache-read --threads 2 --out runs/decompose-precache-read --overwrite --no-progress
mkdir -p docs/results/decompose-precache-read && cp runs/decompose-precache-read/{results.json,config.json,decompose.png} docs/results/decompose-precache-read/
myopia decompose --task precache-read --context-lengths 8,32,128 --threads 2 --out runs/decompose-context-lengths --overwrite --no-progress
mkdir -p docs/results/decompose-context-lengths && cp runs/decompose-context-lengths/{results.json,config.json,decompose.png,context_lengths.png} docs/results/decompose-context-lengths/
