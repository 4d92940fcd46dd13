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
