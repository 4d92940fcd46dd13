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

# myopia demo: the gap table, myopia-demo/{precache,breadcrumbs,text}/results.json, report.html (254 s on an
# idle 2-core machine); docs/results/demo keeps the raw output of the README's demo table
myopia demo --out myopia-demo
for t in precache breadcrumbs text; do mkdir -p docs/results/demo/$t && cp myopia-demo/$t/{results.json,config.json,gap.png} docs/results/demo/$t/; done
# docs/results/gap-1500: the demo's synthetic rows at `myopia gap`'s default 1500 steps (~4 min each)
for t in precache breadcrumbs; do
  myopia gap --task $t --detach hidden,kv --out runs/gap-1500-$t --overwrite --no-progress
  mkdir -p docs/results/gap-1500/$t && cp runs/gap-1500-$t/{results.json,config.json,gap.png} docs/results/gap-1500/$t/
done
# docs/results/probe-precache, docs/results/probe-demo-text: the feature probe and future-token
# probes of the demo's precache and text models, each with its causal test (one torch thread:
# ~2.5 min and ~7 min wall on 2 cores shared with other jobs)
OMP_NUM_THREADS=1 myopia probe --gap-dir myopia-demo/precache --out runs/probe-precache --overwrite --no-progress
mkdir -p docs/results/probe-precache && cp runs/probe-precache/{results.json,config.json,probe.png} docs/results/probe-precache/
OMP_NUM_THREADS=1 myopia probe --gap-dir myopia-demo/text --out runs/probe-demo-text --overwrite --no-progress
mkdir -p docs/results/probe-demo-text && cp runs/probe-demo-text/{results.json,config.json,probe.png} docs/results/probe-demo-text/
# myopia explain: the five held-out text windows where the strictly myopic model loses most (~30 s)
myopia explain --find 5 --gap-dir myopia-demo/text --out docs/results/explain --overwrite
# README screenshots docs/img/{report,explain}.png (~15 s; needs Chromium: apt-get install -y chromium)
python scripts/screenshots.py myopia-demo/report.html docs/results/explain/explain.html docs/img

# docs/results/planning: the myopia gap on rhyming couplets, overall, at the line break and
# at the rhyming ending; strict and paper myopia; transformer-bigram reference (~25 min)
myopia gap --task planning --detach kv,hidden --baseline bigram --seeds 3 --out runs/planning --resume
mkdir -p docs/results/planning && cp runs/planning/{results.json,config.json,gap.png} docs/results/planning/
# docs/results/planning-probe: on those models, the planned rhyme class at the line break — probe
# top-1 and steering by alpha = 1 class-mean difference at every layer, vanilla / strict / paper myopia
# (2 min 25 s wall, 4.1 CPU-minutes on 2 cores shared with other jobs)
myopia probe --gap-dir runs/planning --planning --out runs/planning-probe --overwrite --no-progress
mkdir -p docs/results/planning-probe && cp runs/planning-probe/{results.json,config.json,planning.png,probe.png} docs/results/planning-probe/

# docs/results/multiply: exact match vs filler tokens (2x2 digits, N = 0, 4, 8), vanilla / strict / paper
# myopia, 3 seeds, the bigram at N = 0 (~80 min wall with the default 2 workers on 2 cores shared with
# other jobs: N = 0 with the bigram 37 min, N = 4 21 min, N = 8 about as long; `--task multiply-paper`,
# the paper's 5x5 setting, needs a GPU budget)
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

# docs/results/sweep: sizes L1-d32..L4-d128 x {vanilla, strict myopic, paper myopic} x 3 seeds on the
# built-in corpus, the gap per size and the compute multiplier k per variant (23.4 min wall with
# --workers 2 on an otherwise idle 2-core machine; 2,726 CPU-seconds)
myopia sweep --out runs/sweep --workers 2 --no-progress
mkdir -p docs/results/sweep && cp runs/sweep/{results.json,config.json,loss_vs_compute.png,gap_vs_size.png,multiplier.png} docs/results/sweep/

# docs/results/breadcrumbs-k8: why the breadcrumbs control keeps window K = 2 — at K = 8 the
# myopic models learn it too slowly for the demo's budget (~6 min)
myopia gap --task breadcrumbs --window 8 --detach hidden,kv --seeds 3 --out runs/breadcrumbs-k8 --resume --no-progress
mkdir -p docs/results/breadcrumbs-k8 && cp runs/breadcrumbs-k8/{results.json,config.json,gap.png} docs/results/breadcrumbs-k8/

# docs/results/precache-read: the former precache preset (K = 2), which vanilla learns by reading
# the raw past instead of pre-caching (feature probe R² per model in results.json; ~4 min)
myopia gap --task precache-read --detach kv --seeds 3 --out runs/precache-read --resume --no-progress
mkdir -p docs/results/precache-read && cp runs/precache-read/{results.json,config.json,gap.png} docs/results/precache-read/

# docs/results/ddp-check — the README's torchrun command against one process (text, 100 steps;
# ~45 s and ~80 s wall on 2 cores shared with other jobs)
torchrun --nproc_per_node=2 -m myopia.cli gap --task text --seeds 1 --steps 100 --eval-every 50 --no-progress --out runs/ddp-check/torchrun --overwrite
myopia gap --task text --seeds 1 --steps 100 --eval-every 50 --no-progress --workers 1 --threads 1 --out runs/ddp-check/single --overwrite
for d in torchrun single; do mkdir -p docs/results/ddp-check/$d && cp runs/ddp-check/$d/{results.json,config.json} docs/results/ddp-check/$d/; done

# docs/results/rofin-shape: the shape of Rofin, Naghiyev & Hahn (ICLR 2026: 4 layers, d=128, 4 heads,
# T=64, 1000 steps, lr 1e-3) on the built-in corpus in bytes, at batch 32 = 1/8 of their tokens per run,
# strict and paper myopia, 3 seeds (27 min 38 s wall with --workers 2 --threads 1 on 2 cores, load 2-5),
# then the summary with their published numbers (~2 s)
myopia gap --task text --seq-len 64 --n-layer 4 --n-embd 128 --n-head 4 --steps 1000 --batch-size 32 --lr 1e-3 --warmup-steps 50 --eval-every 250 --test-batches 16 --seeds 3 --detach kv,hidden --workers 2 --threads 1 --out runs/rofin-shape --overwrite --no-progress
mkdir -p docs/results/rofin-shape && cp runs/rofin-shape/{results.json,config.json,gap.png} docs/results/rofin-shape/
python scripts/gap_summary.py docs/results/rofin-shape/summary.json rofin-shape=docs/results/rofin-shape/results.json --reference rofin2026

# docs/results/domain-prose, docs/results/domain-code, docs/results/domain/summary.json: the gap on
# prose (the built-in docstrings) vs code (the standard library's source) at the demo's text settings,
# strict and paper myopia, 3 seeds (2 min 17 s and 2 min 8 s wall with --workers 2 --threads 1 on 2
# cores, load ~5; the first use of stdlib-source also extracts and tokenizes it), then the difference
# of the gaps with a Welch interval (~2 s)
myopia gap --task text --data stdlib-docstrings --seq-len 64 --steps 300 --batch-size 32 --lr 3e-3 --warmup-steps 30 --eval-every 100 --test-batches 16 --seeds 3 --detach kv,hidden --workers 2 --threads 1 --out runs/domain-prose --overwrite --no-progress
myopia gap --task text --data stdlib-source --seq-len 64 --steps 300 --batch-size 32 --lr 3e-3 --warmup-steps 30 --eval-every 100 --test-batches 16 --seeds 3 --detach kv,hidden --workers 2 --threads 1 --out runs/domain-code --overwrite --no-progress
for d in prose code; do mkdir -p docs/results/domain-$d && cp runs/domain-$d/{results.json,config.json,gap.png} docs/results/domain-$d/; done
python scripts/gap_summary.py docs/results/domain/summary.json prose=docs/results/domain-prose/results.json code=docs/results/domain-code/results.json

# docs/results/horizon-precache-read, docs/results/horizon-breadcrumbs: loss vs gradient horizon,
# 5 seeds; strict myopia (kv) on precache-read, the paper's variant (hidden) on the breadcrumbs
# control (wall with --workers 2 --threads 1 on 2 cores: precache-read 12.5 min shared with an unlocked job;
# breadcrumbs 13.9 min, shared for about 2 min with a test run)
myopia horizon --task precache-read --horizons 0,1,2,4,8,inf --seeds 5 --workers 2 --threads 1 --out runs/horizon-precache-read --overwrite --no-progress
mkdir -p docs/results/horizon-precache-read && cp runs/horizon-precache-read/{results.json,config.json,horizon.png} docs/results/horizon-precache-read/
myopia horizon --task breadcrumbs --detach hidden --horizons 0,1,2,4,8,inf --seeds 5 --workers 2 --threads 1 --out runs/horizon-breadcrumbs --overwrite --no-progress
mkdir -p docs/results/horizon-breadcrumbs && cp runs/horizon-breadcrumbs/{results.json,config.json,horizon.png} docs/results/horizon-breadcrumbs/

# docs/results/decompose-precache-read: offset decomposition of a vanilla precache-read model
# (trained here, T = 16, 1500 steps with gradient tracking; 16 min with 2 threads on 2 cores shared with an unlocked job); docs/results/decompose-context-lengths:
# the future share of the W_K+W_V gradient at N = 8, 32, 128 of a precache-read model trained at
# T = 128 (161 s wall with 2 threads on 2 otherwise idle cores)
myopia decompose --task precache-read --threads 2 --out runs/decompose-precache-read --overwrite --no-progress
mkdir -p docs/results/decompose-precache-read && cp runs/decompose-precache-read/{results.json,config.json,decompose.png} docs/results/decompose-precache-read/
myopia decompose --task precache-read --context-lengths 8,32,128 --threads 2 --out runs/decompose-context-lengths --overwrite --no-progress
mkdir -p docs/results/decompose-context-lengths && cp runs/decompose-context-lengths/{results.json,config.json,decompose.png,context_lengths.png} docs/results/decompose-context-lengths/

# docs/results/probe-rofin-shape: future-token probes with their erasure tests on the Rofin-shape
# models above (9 models, one torch thread: 17 min wall on 2 cores shared with other jobs)
OMP_NUM_THREADS=1 myopia probe --gap-dir runs/rofin-shape --out runs/probe-rofin-shape --overwrite --no-progress
mkdir -p docs/results/probe-rofin-shape && cp runs/probe-rofin-shape/{results.json,config.json,probe.png} docs/results/probe-rofin-shape/

# docs/benchmarks: every ratio measured side by side in one run (run on an otherwise idle machine;
# the README names the machine). step_time: 2.5 min; the 60-round T = 1024 run: 4.7 min;
# throughput, decompose cost and tokenization: a few minutes in all (not timed)
python benchmarks/step_time.py --json docs/benchmarks/step_time.json
python benchmarks/step_time.py --lengths 1024 --rounds 60 --json docs/benchmarks/step_time_1024.json
python benchmarks/throughput.py > docs/benchmarks/throughput.txt
python benchmarks/decompose_cost.py --json docs/benchmarks/decompose_cost.json
python benchmarks/tokenize_time.py > docs/benchmarks/tokenize_time.txt
