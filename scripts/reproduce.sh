#!/usr/bin/env bash
# Regenerate the raw outputs the README quotes, under docs/results/<name>/ (results.json,
# config.json and the plots; training runs and probe weights stay in runs/). One command per
# result; the comment gives its wall time on 2 x86-64 cores.
. "$(dirname "$0")/env.sh"

keep() {  # keep SRC DEST: the raw output of one measurement, without its runs
    mkdir -p "$2"
    cp "$1"/results.json "$1"/config.json "$2"/
    cp "$1"/*.png "$2"/ 2>/dev/null || true
}

# The demo table: precache (K = 8), breadcrumbs (K = 2), text; 3 seeds, both myopic variants (~4-5 min)
myopia demo --out runs/demo && for t in precache breadcrumbs text; do keep runs/demo/$t docs/results/demo/$t; done

# Why the breadcrumbs control keeps K = 2: at K = 8 the myopic models learn it too slowly (~6 min)
myopia gap --task breadcrumbs --window 8 --detach hidden,kv --seeds 3 --out runs/breadcrumbs-k8 && keep runs/breadcrumbs-k8 docs/results/breadcrumbs-k8

# The former precache preset (K = 2): vanilla learns it by reading, not by pre-caching (~4 min)
myopia gap --task precache-read --detach kv --seeds 3 --out runs/precache-read && keep runs/precache-read docs/results/precache-read

# Probes and causal tests on the demo's precache and text models (needs the demo's runs above; ~1 min and ~5 min)
myopia probe --gap-dir runs/demo/precache --out runs/probe-precache && keep runs/probe-precache docs/results/probe-precache
myopia probe --gap-dir runs/demo/text --out runs/probe && keep runs/probe docs/results/probe
