"""`myopia probe`: where a model carries information about future tokens, and whether it uses it.

For every model and every layer ℓ (numbered as in :mod:`myopia.probes`: 0 = embeddings,
ℓ = after block ℓ, n_layer = after the final norm):

* **future-token probes** — from the state at (ℓ, t) predict token t+k, k = 1..K (k = 1 is
  the next token, the one the model's own loss at t asks for) with a multinomial logistic
  probe over the most frequent tokens plus "other"; held-out cross-entropy and top-1,
  against two baselines counted on the training text: the unigram P(token t+k) and the
  skip-bigram P(token t+k | token t) — what the current token alone says about t+k;
* **task features** (``task.feature(x)`` -> (B, T), e.g. sin(a·x_t) at t on ``precache``):
  a ridge probe, R²;
* **the causal test paired with each probe** — the target is erased from the state at
  (ℓ, t) (LEACE, :func:`myopia.probes.fit_eraser`: afterwards no linear probe reads it)
  and the loss change is measured where the target is used: the loss that predicts token
  t+k, or for a feature the loss at t (``present``) plus at every later position
  (``future``). Each test sequence is edited at one position (positions taken in turn),
  so the 95% CI is over held-out sequences — over seeds for a gap directory. Every
  (target, layer) gets a verdict; probe and causal test disagree when a target is
  decodable but not used, or used but not decodable;
* **planning** (``planning=True``, the ``planning`` tasks only) — at the line break, the
  rhyme class line 2 will end in: a multinomial probe (top-1 against chance 1/n_classes),
  and *steering*: the state at the line break of a held-out couplet of class r gets
  ``alpha * (mu_r' - mu_r)`` added (class means of that state, per couplet, from the
  probe's training states), the model writes line 2 greedily with the steered state kept,
  and the share of lines ending in r' is the effect (Wilson 95% interval; over seeds the
  two-level bootstrap of :func:`myopia.results.proportion_over_seeds`), against the same
  share without steering and chance.

Data: probes and erasers are fitted on the task's val split; the penalty is chosen on one
part of the test split and everything is scored on another. Nothing a probe is scored on
was seen by the probe or by the model.

Models: every run of a ``myopia gap`` directory (vanilla and each myopic variant side by
side, aggregated over seeds), one run of the built-in GPT (``checkpoint``), or a local
Hugging Face model directory with a text file.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from myopia.measures.scaffold import MeasureResult, run_measure
from myopia.presets import PLANNING_STEER_ALPHA, PROBE
from myopia.probes import (
    LinearProbe, at_positions, edit_residual, fit_eraser, fit_ridge, fit_softmax, hidden_states, n_layers, r2_score,
)
from myopia.results import atomic_write_json, mean_ci95, proportion_over_seeds, wilson95

# A target counts as *decodable* when the probe beats the skip-bigram baseline (tokens: the
# CI of the cross-entropy gain lies above 0) or explains half the variance (features,
# R² >= 0.5); as *used* when erasing it raises the loss (CI above 0) by at least 1% of the
# loss at the positions that need it — smaller effects are real but do not carry the task.
FEATURE_DECODABLE_R2 = 0.5
# Future-token probes are also written over the whole vocabulary, in the form `myopia explain
# --probes` reads (myopia.explain.PROBES_CONTRACT), when that is small: (V, C) per probe.
EXPLAIN_MAX_VOCAB = 4096
USED_MIN_RELATIVE = 0.01
ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)  # skip-bigram smoothing toward the unigram, chosen on val


@dataclass
class ProbeResult(MeasureResult):
    measure = "probe"

    source: dict  # {"kind": "gap" | "checkpoint" | "hf", "path": ...}
    task: dict
    settings: dict
    n_layer: int
    models: dict  # name -> {future_token, baseline, feature_r2, causal, verdicts, runs}
    runs: dict = field(default_factory=dict)  # run key -> the same for one trained model (gap directories)
    classes: dict = field(default_factory=dict)  # token classes of the future-token probes
    planning: dict = field(default_factory=dict)  # model name -> {probe, steering, ...} (planning tasks, planning=True)


# ---------------------------------------------------------------------- data
def probe_splits(task, settings: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Held-out sequences: "train" (the task's val split), "val" and "test" (two disjoint
    parts of the test split). A text corpus must hold that many contexts."""
    n_tr, n_va, n_te = settings["train_seqs"], settings["val_seqs"], settings["test_seqs"]
    if min(n_tr, n_va, n_te) < 1:
        raise ValueError(f"probe splits need at least one sequence each, got train/val/test {n_tr}/{n_va}/{n_te}")
    limit = getattr(task, "n_contexts", None)
    if limit is not None and (limit["val"] < n_tr or limit["test"] < n_va + n_te):
        raise ValueError(
            f"the corpus holds {limit['val']} val and {limit['test']} test contexts, fewer than the probes need "
            f"({n_tr} train from val, {n_va}+{n_te} val+test from test); lower --train-seqs/--val-seqs/--test-seqs "
            f"or use a larger corpus"
        )
    x_tr, y_tr = task.batch("val", 0, n_tr)
    x_h, y_h = task.batch("test", 0, n_va + n_te)
    return {"train": (x_tr, y_tr), "val": (x_h[:n_va], y_h[:n_va]), "test": (x_h[n_va:], y_h[n_va:])}


@torch.no_grad()
def layer_states(model, x: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """The residual stream at every layer for inputs x: n_layer + 1 tensors (N, T, C)."""
    parts = [hidden_states(model, x[i: i + batch_size]) for i in range(0, len(x), batch_size)]
    return [torch.cat([p[layer] for p in parts]).float() for layer in range(len(parts[0]))]


def flat(h: torch.Tensor, positions: slice = slice(None)) -> torch.Tensor:
    """(N, T, C) at the given positions -> (N * T', C)."""
    h = h[:, positions]
    return h.reshape(-1, h.shape[-1])


@dataclass
class TokenClasses:
    """The probes' classes: the ``M`` most frequent tokens of the training text, and
    "other" (class M) for every remaining token when the vocabulary is larger."""

    ids: torch.Tensor  # (M,) token ids, most frequent first
    class_of: torch.Tensor  # (V,) token id -> class index

    @property
    def n(self) -> int:
        return int(self.class_of.max()) + 1

    @classmethod
    def from_counts(cls, counts: torch.Tensor, m: int) -> "TokenClasses":
        V = len(counts)
        order = torch.argsort(counts, descending=True, stable=True)
        m = min(m, V)
        ids = order[:m]
        class_of = torch.full((V,), m, dtype=torch.long)
        class_of[ids] = torch.arange(m)
        return cls(ids, class_of)


# ---------------------------------------------------------------------- baselines
def skip_bigram_baselines(bx: torch.Tensor, by: torch.Tensor, classes: TokenClasses, k: int, K: int,
                          val: tuple, test: tuple) -> tuple[dict, torch.Tensor]:
    """Unigram and skip-bigram P(class of token t+k | token t) from training text (bx, by:
    (N, T) inputs and next tokens), smoothing chosen on ``val``, scored on ``test`` at
    positions t = 0..T-K. Returns (scores, the skip-bigram's per-position NLL on test (N, T-K+1))."""
    n_cls, V = classes.n, len(classes.class_of)
    T = bx.shape[1]

    def pairs(x, y):  # source tokens and target classes at positions 0..T-K: (N, T-K+1) each
        return x[:, : T - K + 1], classes.class_of[y[:, k - 1: k - 1 + T - K + 1]]

    src, tgt = pairs(bx, by)
    joint = torch.zeros(V, n_cls, dtype=torch.float64)
    joint.index_put_((src.reshape(-1), tgt.reshape(-1)), torch.ones(src.numel(), dtype=torch.float64), accumulate=True)
    uni = (joint.sum(0) + 1) / (joint.sum() + n_cls)  # (n_cls,) add-one
    row = joint.sum(1, keepdim=True)  # (V, 1)

    def bigram(alpha):  # (V, n_cls): Dirichlet smoothing toward the unigram
        return (joint + alpha * uni) / (row + alpha)

    def nll(table, x, y):  # (N, T-K+1)
        s, t = pairs(x, y)
        p = table[s, t] if table.dim() == 2 else table[t]
        return -p.log()

    alpha = min(ALPHAS, key=lambda a: float(nll(bigram(a), *val).mean()))
    table = bigram(alpha)
    s, t = pairs(*test)
    bi_nll = nll(table, *test)
    scores = {
        "unigram_ce": float(nll(uni, *test).mean()),
        "bigram_ce": float(bi_nll.mean()),
        "unigram_top1": float((t == uni.argmax()).double().mean()),
        "bigram_top1": float((table[s].argmax(-1) == t).double().mean()),
        "bigram_alpha": alpha,
    }
    return scores, bi_nll


def token_counts(bx: torch.Tensor, by: torch.Tensor, vocab_size: int) -> torch.Tensor:
    tokens = torch.cat([bx[:, :1], by], dim=1).reshape(-1)
    return torch.bincount(tokens, minlength=vocab_size).double()


# ---------------------------------------------------------------------- causal test
@torch.no_grad()
def per_position_losses(model, task, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                        layer: int | None = None, edit_fn=None, positions: torch.Tensor | None = None) -> torch.Tensor:
    """Per-position loss (N, T); with ``layer``/``edit_fn``/``positions``, sequence b has
    ``edit_fn`` applied to its state at (layer, positions[b])."""
    was_training = model.training
    model.eval()
    out = []
    try:
        for i in range(0, len(x), batch_size):
            xb, yb = x[i: i + batch_size], y[i: i + batch_size]
            if layer is None:
                pred = model(xb)
            else:
                with edit_residual(model, layer, at_positions(positions[i: i + batch_size], edit_fn)):
                    pred = model(xb)
            out.append(task.loss(pred, yb).double())
    finally:
        model.train(was_training)
    return torch.cat(out)


def _stat(values: torch.Tensor, bounds=None) -> dict:
    return mean_ci95([float(v) for v in values], bounds=bounds)


def causal_entry(delta: torch.Tensor, clean: torch.Tensor, positions: torch.Tensor, offset: int | None,
                 rank: int) -> dict:
    """Loss change of erasing a target, from per-position losses (N, T) with and without the
    edit at ``positions`` (N,). ``offset``: the target is used by the loss at t + offset
    (tokens: k - 1); None: a feature, used at t (present) and after (future)."""
    rows = torch.arange(len(delta))
    if offset is not None:
        effect, ref = delta[rows, positions + offset], clean[rows, positions + offset]
        extra = {}
    else:
        T = delta.shape[1]
        after = torch.arange(T).unsqueeze(0) >= positions.unsqueeze(1)  # (N, T): positions >= t
        effect, ref = delta.sum(1), (clean * after).sum(1)  # positions before t are unchanged (causal)
        present = delta[rows, positions]
        extra = {"present": _stat(present), "future": _stat(effect - present)}
    stat = _stat(effect)
    ref_mean = float(ref.mean())
    return {"effect": stat["mean"], "ci95": stat["ci95"], "n": stat["n"],
            "relative": stat["mean"] / ref_mean if ref_mean > 0 else None, "clean_loss": ref_mean,
            "erased_rank": rank, **extra}


# ---------------------------------------------------------------------- one model
def probe_model(model, task, splits: dict, settings: dict, *, classes: TokenClasses | None,
                baselines: dict | None, causal: bool = True) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """Probes (and their causal tests) of one model: (entry for results.json, probe and eraser
    tensors for safetensors, metadata for the probes' JSON)."""
    bs, K = settings["batch_size"], settings["k_max"]
    hid = {s: layer_states(model, splits[s][0], bs) for s in splits}
    L = len(hid["train"]) - 1
    x_te, y_te = splits["test"]
    tensors: dict[str, torch.Tensor] = {}
    meta: dict = {"lam": {}}
    entry: dict = {}
    clean = per_position_losses(model, task, x_te, y_te, bs) if causal else None
    T = x_te.shape[1]
    N = len(x_te)

    def erase_test(layer: int, eraser, n_valid: int) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.arange(N) % n_valid  # each test sequence edited at one position, in turn
        edited = per_position_losses(model, task, x_te, y_te, bs, layer, eraser, positions)
        return edited - clean, positions

    if classes is not None:
        n_pos = T - K + 1  # positions t = 0..T-K: every k has its target inside the sequence
        window = slice(0, n_pos)
        entry["future_token"], entry["baseline"] = {}, {key: {} for key in (
            "unigram_ce", "bigram_ce", "unigram_top1", "bigram_top1", "bigram_alpha")}
        if causal:
            entry["causal"] = {}
        for k in range(1, K + 1):
            def target(split):  # (N * n_pos,) class of token t+k = y[t+k-1]
                return classes.class_of[splits[split][1][:, k - 1: k - 1 + n_pos]].reshape(-1)

            z = {s: target(s) for s in splits}
            for key, v in baselines[k]["scores"].items():
                entry["baseline"][key][str(k)] = v
            bi_nll = baselines[k]["test_nll"]  # (N, n_pos)
            entry["future_token"][str(k)] = {}
            if causal:
                entry["causal"][str(k)] = {}
            for layer in range(L + 1):
                probe = fit_softmax(flat(hid["train"][layer], window), z["train"], classes.n,
                                    flat(hid["val"][layer], window), z["val"])
                logits = probe.predict(flat(hid["test"][layer], window))
                nll = F.cross_entropy(logits, z["test"], reduction="none").double().view(N, n_pos)
                correct = (logits.argmax(-1) == z["test"]).double().view(N, n_pos)
                ce, top1 = _stat(nll.mean(1)), _stat(correct.mean(1), bounds=(0.0, 1.0))
                entry["future_token"][str(k)][str(layer)] = {
                    "ce": ce["mean"], "ce_ci95": ce["ci95"], "top1": top1["mean"], "top1_ci95": top1["ci95"],
                    "gain_over_bigram": _stat((bi_nll - nll).mean(1)), "lam": probe.lam,
                }
                tensors.update(probe.tensors(f"future_token.k{k}.layer{layer}"))
                meta["lam"][f"future_token.k{k}.layer{layer}"] = probe.lam
                meta.setdefault("token_probes", {})[(k, layer)] = probe
                if causal:
                    eraser = fit_eraser(flat(hid["train"][layer], window), F.one_hot(z["train"], classes.n))
                    delta, positions = erase_test(layer, eraser, n_pos)
                    entry["causal"][str(k)][str(layer)] = causal_entry(delta, clean, positions, k - 1, eraser.rank)
                    tensors.update(eraser.tensors(f"eraser.k{k}.layer{layer}"))

    if hasattr(task, "feature"):
        f = {s: task.feature(splits[s][0]).float() for s in splits}  # (N, T)
        entry["feature_r2"] = {}
        if causal:
            entry.setdefault("causal", {})["feature"] = {}
        for layer in range(L + 1):
            probe = feature_probe(hid, f, layer)
            entry["feature_r2"][str(layer)] = r2_score(probe.predict(flat(hid["test"][layer])), f["test"].reshape(-1))
            tensors.update(probe.tensors(f"feature.layer{layer}"))
            meta["lam"][f"feature.layer{layer}"] = probe.lam
            if causal:
                eraser = fit_eraser(flat(hid["train"][layer]), f["train"].reshape(-1))
                delta, positions = erase_test(layer, eraser, T)
                entry["causal"]["feature"][str(layer)] = causal_entry(delta, clean, positions, None, eraser.rank)
                tensors.update(eraser.tensors(f"eraser.feature.layer{layer}"))
    if not entry:
        raise ValueError(f"task {getattr(task, 'name', '?')} has neither tokens nor a known feature to probe")
    entry["verdicts"] = verdicts(entry)
    if settings.get("planning"):
        entry["planning"] = planning_entry(model, task, splits, hid, settings)
    return entry, tensors, meta


def feature_probe(hid: dict, f: dict, layer: int) -> LinearProbe:
    """Ridge probe of the task feature f (N, T) from the state at ``layer``, every position."""
    return fit_ridge(flat(hid["train"][layer]), f["train"].reshape(-1), flat(hid["val"][layer]), f["val"].reshape(-1))


def feature_r2(model, task, settings: dict | None = None) -> dict[str, float]:
    """Held-out R² of a ridge probe for ``task.feature`` at every layer ({layer: R²}); the
    probe the gap measure reports next to the losses."""
    settings = {**PROBE, **(settings or {})}
    splits = probe_splits(task, settings)
    hid = {s: layer_states(model, splits[s][0], settings["batch_size"]) for s in splits}
    f = {s: task.feature(splits[s][0]).float() for s in splits}
    return {str(layer): r2_score(feature_probe(hid, f, layer).predict(flat(hid["test"][layer])), f["test"].reshape(-1))
            for layer in range(len(hid["train"]))}


# ---------------------------------------------------------------------- planning: probe and steering
def line_break_states(hid: list[torch.Tensor], task, x: torch.Tensor, y: torch.Tensor
                      ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """The states at every line break of x (B, T), in :meth:`planning_targets` order:
    ([(N, C) per layer], classes (N,) of the ending line 2 will have, couplet index (N,)),
    N = B * couplets; ``hid`` holds the states of x at every layer, (B, T, C) each."""
    pos, classes = task.planning_targets(x, y)
    return [h[pos[:, 0], pos[:, 1]] for h in hid], classes, torch.arange(len(pos)) % task.couplets


def class_means(states: torch.Tensor, classes: torch.Tensor, couplet: torch.Tensor, n_classes: int,
                n_couplets: int) -> torch.Tensor:
    """(n_couplets, n_classes, C): the mean state of each class at each couplet's line break.

    Per couplet, because the line breaks sit at different positions: a mean over both would
    let the difference of two class means carry a position offset wherever the classes are
    not equally frequent at the two positions."""
    mu = torch.zeros(n_couplets, n_classes, states.shape[1], dtype=states.dtype)
    for k in range(n_couplets):
        for r in range(n_classes):
            sel = (couplet == k) & (classes == r)
            if not sel.any():
                raise ValueError(f"no training couplet {k} of rhyme class {r} for the steering means; "
                                 f"raise --train-seqs")
            mu[k, r] = states[sel].mean(0)
    return mu


def steer_targets(classes: torch.Tensor, n_classes: int) -> torch.Tensor:
    """The class r' each line is steered to: every other class in turn, (r + 1 + i mod (C - 1)) mod C
    for line i of class r, so each r' != r is used equally often and no line is steered twice."""
    i = torch.arange(len(classes))
    return (classes + 1 + i % (n_classes - 1)) % n_classes


@torch.no_grad()
def write_line_two(model, task, x: torch.Tensor, layer: int | None = None, delta: torch.Tensor | None = None,
                   batch_size: int = PROBE["batch_size"]) -> torch.Tensor:
    """Line 2 of every couplet of x (B, T) as the model writes it greedily from the line break
    (the prompt is the true sequence up to and including the line break): (N, line_words)
    tokens in :meth:`planning_targets` order, the cue first and the ending last. With
    ``layer`` and ``delta`` (N, C), line i's state at (layer, line break) gets delta[i] added at
    every forward, so the steered state is kept while the whole line is written."""
    from myopia.generation import generate

    B, L, n_cp = len(x), task.line_words, task.couplets
    out = torch.empty(B, n_cp, L, dtype=torch.long)
    for k, p in enumerate(task.line_break_positions()):
        for i in range(0, B, batch_size):
            prompt = x[i: i + batch_size, : p + 1]
            if layer is None:
                seq = generate(model, prompt, L, greedy=True)
            else:
                d = delta.view(B, n_cp, -1)[i: i + batch_size, k]  # (b, C)
                with edit_residual(model, layer, at_positions(torch.full((len(prompt),), p), lambda h, d=d: h + d)):
                    seq = generate(model, prompt, L, greedy=True)
            out[i: i + batch_size, k] = seq[:, p + 1:]
    return out.view(B * n_cp, L)


def _share(hits: torch.Tensor) -> dict:
    k, n = int(hits.sum()), len(hits)
    return {"share": k / n, "wilson95": wilson95(k, n), "successes": k, "n": n}


def planning_entry(model, task, splits: dict, hid: dict, settings: dict) -> dict:
    """The planned rhyme class at the line break of one model, at every layer: the probe's
    top-1 (95% CI over held-out sequences) and the steering effect (module docstring).

    ``hid``: split -> the states of that split's inputs at every layer, (N, T, C) each. The
    probe and the class means are fitted on "train", the penalty chosen on "val"; probe
    scores and steered lines come from "test". ``rhymes`` is the share of unsteered lines
    that end in their own class (how well the model plans at all)."""
    C, alpha, bs = task.n_classes, settings["steer_alpha"], settings["batch_size"]
    st = {s: line_break_states(hid[s], task, *splits[s]) for s in splits}
    (tr, tr_cls, tr_cp), (va, va_cls, _), (te, te_cls, te_cp) = st["train"], st["val"], st["test"]
    x_te = splits["test"][0]
    target = steer_targets(te_cls, C)
    clean = task.word_class(write_line_two(model, task, x_te, batch_size=bs)[:, -1])  # (N,) unsteered endings
    unsteered = _share(clean == target)
    entry = {"n_classes": C, "chance": 1 / C, "alpha": alpha, "rhymes": _share(clean == te_cls), "probe": {},
             "steering": {}}
    for layer in range(len(tr)):
        probe = fit_softmax(tr[layer], tr_cls, C, va[layer], va_cls)
        logits = probe.predict(te[layer])  # (N, C)
        correct = (logits.argmax(-1) == te_cls).double().view(len(x_te), -1)  # (sequences, couplets)
        nll = F.cross_entropy(logits, te_cls, reduction="none").double().view(len(x_te), -1)
        top1, ce = _stat(correct.mean(1), bounds=(0.0, 1.0)), _stat(nll.mean(1))
        entry["probe"][str(layer)] = {"top1": top1["mean"], "ci95": top1["ci95"], "ce": ce["mean"],
                                      "ce_ci95": ce["ci95"], "lam": probe.lam}
        mu = class_means(tr[layer], tr_cls, tr_cp, C, task.couplets)  # (couplets, C, width)
        delta = alpha * (mu[te_cp, target] - mu[te_cp, te_cls])  # (N, width)
        lines = write_line_two(model, task, x_te, layer, delta, bs)  # (N, line_words)
        end = task.word_class(lines[:, -1])
        entry["steering"][str(layer)] = {
            **_share(end == target), "unsteered": unsteered["share"], "unsteered_wilson95": unsteered["wilson95"],
            "unsteered_successes": unsteered["successes"], "chance": 1 / C,
            "kept": float((end == te_cls).double().mean()),  # steered lines still ending in their own class
            # the cue names the ending (cue="word"): the share of cues that announce a class-r' word
            "cue_share": float((task.cue_class(lines[:, 0]) == target).double().mean()) if task.cue == "word" else None,
            "delta_norm": float(delta.norm(dim=1).mean()),
        }
    return entry


def aggregate_planning(entries: list[dict]) -> dict:
    """One planning entry per trained model (seeds) -> over seeds: the probe's top-1 as a
    mean with a 95% CI over seeds; each steering share as the mean of the seeds' shares with
    ``ci95`` the two-level bootstrap of :func:`proportion_over_seeds` (seeds, then lines) and
    ``wilson95`` the Wilson interval of the lines pooled over seeds (narrower: it ignores
    seed-to-seed spread)."""
    if len(entries) == 1:
        return {**entries[0], "n_seeds": 1}
    first = entries[0]

    def over_seeds(cells: list[dict]) -> dict:
        b = proportion_over_seeds([c["successes"] for c in cells], [c["n"] for c in cells])
        k, n = sum(c["successes"] for c in cells), sum(c["n"] for c in cells)
        return {"share": b["mean"], "ci95": b["ci95"], "per_seed": b["per_seed"], "wilson95": wilson95(k, n),
                "successes": k, "n": n}

    out = {"n_classes": first["n_classes"], "chance": first["chance"], "alpha": first["alpha"],
           "n_seeds": len(entries), "rhymes": over_seeds([e["rhymes"] for e in entries]), "probe": {}, "steering": {}}
    for layer in first["probe"]:
        top1 = mean_ci95([e["probe"][layer]["top1"] for e in entries], bounds=(0.0, 1.0))
        out["probe"][layer] = {"top1": top1["mean"], "ci95": top1["ci95"],
                               "per_seed": [e["probe"][layer]["top1"] for e in entries],
                               "ce": sum(e["probe"][layer]["ce"] for e in entries) / len(entries)}
    for layer in first["steering"]:
        cells = [e["steering"][layer] for e in entries]
        k_un, n = sum(c["unsteered_successes"] for c in cells), sum(c["n"] for c in cells)
        cue = [c["cue_share"] for c in cells]
        out["steering"][layer] = {
            **over_seeds(cells), "unsteered": k_un / n, "unsteered_wilson95": wilson95(k_un, n),
            "unsteered_successes": k_un, "chance": first["chance"],
            "kept": sum(c["kept"] for c in cells) / len(cells),
            "cue_share": None if None in cue else sum(cue) / len(cue),
            "delta_norm": sum(c["delta_norm"] for c in cells) / len(cells),
        }
    return out


# ---------------------------------------------------------------------- verdicts
def _decodable(entry: dict, target: str, layer: str) -> bool | None:
    if target == "feature":
        r2 = entry.get("feature_r2", {}).get(layer)
        return None if r2 is None else r2 >= FEATURE_DECODABLE_R2
    gain = entry["future_token"][target][layer]["gain_over_bigram"]
    return None if gain.get("ci95") is None else gain["ci95"][0] > 0


def _used(c: dict) -> bool | None:
    if c.get("ci95") is None:
        return None
    return c["ci95"][0] > 0 and (c["relative"] or 0.0) >= USED_MIN_RELATIVE


def verdicts(entry: dict) -> dict:
    """target -> layer -> "decodable and used" | "decodable, not used" | "used, not decodable"
    | "neither" | "undetermined" (no interval: one seed without examples' CI)."""
    out: dict = {}
    for target, by_layer in entry.get("causal", {}).items():
        out[target] = {}
        for layer, c in by_layer.items():
            d, u = _decodable(entry, target, layer), _used(c)
            if d is None or u is None:
                v = "undetermined"
            else:
                v = {(True, True): "decodable and used", (True, False): "decodable, not used",
                     (False, True): "used, not decodable", (False, False): "neither"}[(d, u)]
            out[target][layer] = v
    return out


DISAGREE = ("decodable, not used", "used, not decodable")


def _by_cell(entries: list[dict], section: str) -> dict:
    """target -> layer -> [that cell of every entry]."""
    return {target: {layer: [e[section][target][layer] for e in entries] for layer in by_layer}
            for target, by_layer in entries[0][section].items()}


def _token_cell(cells: list[dict]) -> dict:
    ce = mean_ci95([c["ce"] for c in cells])
    top1 = mean_ci95([c["top1"] for c in cells], bounds=(0.0, 1.0))
    return {"ce": ce["mean"], "ce_ci95": ce["ci95"], "top1": top1["mean"], "top1_ci95": top1["ci95"],
            "gain_over_bigram": mean_ci95([c["gain_over_bigram"]["mean"] for c in cells])}


def _causal_cell(cells: list[dict]) -> dict:
    eff = mean_ci95([c["effect"] for c in cells])
    ref = sum(c["clean_loss"] for c in cells) / len(cells)
    cell = {"effect": eff["mean"], "ci95": eff["ci95"], "n": eff["n"], "relative": eff["mean"] / ref if ref > 0 else None,
            "clean_loss": ref, "erased_rank": max(c["erased_rank"] for c in cells)}
    for part in ("present", "future"):
        if part in cells[0]:
            cell[part] = mean_ci95([c[part]["mean"] for c in cells])
    return cell


def aggregate(entries: list[dict]) -> dict:
    """One entry per trained model (seeds) -> means with 95% CIs over seeds. One entry is
    returned as it is (its CIs are over held-out sequences)."""
    if len(entries) == 1:
        return {**entries[0], "n_seeds": 1}
    first = entries[0]
    out: dict = {"n_seeds": len(entries)}
    if "future_token" in first:
        out["future_token"] = {k: {layer: _token_cell(cells) for layer, cells in by_layer.items()}
                               for k, by_layer in _by_cell(entries, "future_token").items()}
        out["baseline"] = first["baseline"]  # the same text for every seed
    if "feature_r2" in first:
        stats = {layer: mean_ci95([e["feature_r2"][layer] for e in entries], bounds=(float("-inf"), 1.0))
                 for layer in first["feature_r2"]}
        out["feature_r2"] = {layer: s["mean"] for layer, s in stats.items()}
        out["feature_r2_ci95"] = {layer: s["ci95"] for layer, s in stats.items()}
    if "causal" in first:
        out["causal"] = {target: {layer: _causal_cell(cells) for layer, cells in by_layer.items()}
                         for target, by_layer in _by_cell(entries, "causal").items()}
    out["verdicts"] = verdicts(out)
    return out


# ---------------------------------------------------------------------- sources
def gap_models(gap_dir: Path) -> tuple[dict, dict, list[tuple[str, str, object]]]:
    """(task spec, model spec, [(model name, run key, checkpoint path)]) of a `myopia gap` output."""
    cfg_file = gap_dir / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{gap_dir} holds no config.json; give the --out directory of a `myopia gap` run")
    cfg = json.loads(cfg_file.read_text())
    if cfg.get("measure") != "gap":
        raise ValueError(f"{gap_dir} holds a {cfg.get('measure', 'different')} measurement, not a myopia gap; "
                         f"give the --out directory of `myopia gap` or `myopia demo`'s OUT/TASK")
    from myopia.policy import GradientPolicy

    names = ["vanilla"] + [GradientPolicy(horizon=0, detach=d).name for d in cfg["detach"]]
    out = []
    for name in names:
        for s in cfg["seeds"]:
            ckpt = gap_dir / "runs" / f"{name}-seed{s}" / "checkpoint" / "model.safetensors"
            if not (gap_dir / "runs" / f"{name}-seed{s}" / "result.json").is_file():
                raise FileNotFoundError(f"run {name}-seed{s} of {gap_dir} has not finished; finish it with "
                                        f"`myopia gap ... --out {gap_dir} --resume`")
            out.append((name, f"{name}-seed{s}", ckpt))
    return cfg["task"], cfg["model"], out


def vocabulary_probe(probe: LinearProbe, classes: TokenClasses) -> dict[str, torch.Tensor]:
    """A class probe as logits over the whole vocabulary, acting on the raw state:
    ``{"weight": (V, C), "bias": (V,)}``. The standardisation is folded into the weights; a
    token outside the classes gets the "other" logit minus log(number of such tokens), so
    the softmax over the vocabulary gives each class the probe's probability."""
    w = probe.weight / probe.standardizer.scale.unsqueeze(1)  # (C, n) on the raw state
    b = probe.bias - probe.standardizer.mean @ w  # (n,)
    cls = classes.class_of  # (V,)
    n_other = int((cls == len(classes.ids)).sum())
    bias = b[cls] - (torch.log(torch.tensor(float(n_other))) * (cls == len(classes.ids))) if n_other else b[cls]
    return {"weight": w.T[cls].contiguous().float(), "bias": bias.float()}


def run_name(path: Path) -> str:
    """A model's name in results: its directory (a run's, for a checkpoint file or folder)."""
    p = path.expanduser().resolve()
    if p.is_file():
        p = p.parent
    return p.parent.name if p.name == "checkpoint" else p.name


def future_token_probes(
    *,
    gap_dir: str | Path | None = None,
    checkpoint: str | Path | None = None,
    model: str | Path | None = None,
    data: str | Path | None = None,
    seq_len: int | None = None,
    tokenizer: str | None = None,
    trust_remote_code: bool = False,
    k_max: int = PROBE["k_max"],
    classes: int = PROBE["classes"],
    train_seqs: int = PROBE["train_seqs"],
    val_seqs: int = PROBE["val_seqs"],
    test_seqs: int = PROBE["test_seqs"],
    baseline_seqs: int = PROBE["baseline_seqs"],
    batch_size: int = PROBE["batch_size"],
    causal: bool = True,
    planning: bool = False,
    steer_alpha: float = PLANNING_STEER_ALPHA,
    out_dir: str | Path = "runs/probe",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> ProbeResult:
    """Probe (and causally test) the models of a gap directory, one run, or an HF model.

    Exactly one of ``gap_dir`` (a ``myopia gap`` output: vanilla and each myopic variant,
    over seeds), ``checkpoint`` (a run of the built-in GPT) or ``model`` (a local HF model
    directory; ``data`` a text file) names the models. Writes ``results.json``,
    ``config.json`` and ``probes/NAME.safetensors`` + ``probes/NAME.json`` to ``out_dir``;
    a model's JSON (written last) holds its result too, so ``resume=True`` continues a
    killed measurement from the models already probed.

    ``planning`` (a ``planning`` task only): also probe the planned rhyme class at the line
    break and steer it with ``steer_alpha`` times the difference of class means (module
    docstring); results.json then has ``planning`` {model: {probe, steering, rhymes}}.
    """
    if sum(v is not None for v in (gap_dir, checkpoint, model)) != 1:
        raise ValueError("name the models to probe with exactly one of --gap-dir, --checkpoint or --model")
    for name, v in (("k_max", k_max), ("classes", classes), ("batch_size", batch_size), ("baseline_seqs", baseline_seqs)):
        if v < 1:
            raise ValueError(f"{name.replace('_', '-')} must be >= 1, got {v}")
    if not math.isfinite(steer_alpha):
        raise ValueError(f"steer-alpha must be a finite number, got {steer_alpha}")
    settings = dict(k_max=k_max, classes=classes, train_seqs=train_seqs, val_seqs=val_seqs, test_seqs=test_seqs,
                    baseline_seqs=baseline_seqs, batch_size=batch_size, causal=causal)
    if planning:  # only then: probe directories measured without it keep their config
        settings.update(planning=True, steer_alpha=float(steer_alpha))
    from myopia.data import make_task
    from myopia.runs import load_checkpoint_model

    if gap_dir is not None and (data is not None or seq_len is not None or tokenizer is not None):
        raise ValueError("--data/--seq-len/--tokenizer apply to --model/--checkpoint; a gap directory brings its own task")
    if gap_dir is not None:
        gap_dir = Path(gap_dir)
        task_spec, model_spec, members = gap_models(gap_dir)
        source = {"kind": "gap", "path": str(gap_dir.resolve())}

        def load(ckpt, seed=0):
            return load_checkpoint_model(ckpt, model_spec, task, seed)
    else:
        from myopia.measures.bonus import load_theta0

        loaded, task_spec, info, _ = load_theta0(checkpoint if checkpoint is not None else model, data=data,
                                                 seq_len=seq_len, tokenizer=tokenizer,
                                                 trust_remote_code=trust_remote_code)
        name = run_name(Path(checkpoint if checkpoint is not None else model))
        members = [(name, name, None)]
        source = {"kind": "checkpoint" if checkpoint is not None else "hf", "path": info.get("checkpoint", info.get("path"))}

        def load(ckpt, seed=0):
            return loaded
    task = make_task(**task_spec)
    token_task = not getattr(task, "regression", False)
    if not token_task and not hasattr(task, "feature"):
        raise ValueError(f"task {task_spec.get('name')} has neither tokens nor a known feature to probe")
    if planning and not hasattr(task, "planning_targets"):
        raise ValueError(f"--planning probes the rhyme class of a planning task (planning, planning-index); "
                         f"task {task_spec.get('name')} is not one")
    if token_task and k_max >= task.seq_len:
        raise ValueError(f"k-max {k_max} must be shorter than the sequences ({task.seq_len} tokens)")
    splits = probe_splits(task, settings)  # checks the corpus is large enough, before anything is written

    def summarize(runs, out: Path) -> ProbeResult:
        cls, baselines, class_info = None, None, {}
        if token_task:
            bx, by = task.batch("train", 0, baseline_seqs)
            cls = TokenClasses.from_counts(token_counts(bx, by, task.vocab_size), classes)
            baselines = {}
            for k in range(1, k_max + 1):
                scores, test_nll = skip_bigram_baselines(bx, by, cls, k, k_max, splits["val"], splits["test"])
                baselines[k] = {"scores": scores, "test_nll": test_nll}
            decode = getattr(task, "decode", None)
            class_info = {"ids": cls.ids.tolist(), "other": cls.n > len(cls.ids),
                          "text": [decode([int(t)]) for t in cls.ids] if decode else None}
        probes_dir = out / "probes"
        probes_dir.mkdir(exist_ok=True)
        from safetensors.torch import save_file
        from tqdm.auto import tqdm

        per_run, by_name, plans, n_layer = {}, {}, {}, 0
        for name, key, ckpt in tqdm(members, desc="probe", disable=not progress):
            sidecar = probes_dir / f"{key}.json"
            if resume and sidecar.is_file() and (probes_dir / f"{key}.safetensors").is_file():
                done = json.loads(sidecar.read_text())  # a model probed before the measurement was stopped
                entry, n_layer = done["result"], done["n_layer"]
            else:
                seed = int(key.rsplit("seed", 1)[1]) if "-seed" in key else 0
                m = load(ckpt, seed)
                n_layer = n_layers(m)
                entry, tensors, meta = probe_model(m, task, splits, settings, classes=cls, baselines=baselines,
                                                   causal=causal)
                if cls is not None:
                    tensors["classes.ids"] = cls.ids
                save_file({k: v.detach().contiguous().float() if v.is_floating_point() else v.contiguous()
                           for k, v in tensors.items()}, str(probes_dir / f"{key}.safetensors"))
                explain = []
                if cls is not None and len(cls.class_of) <= EXPLAIN_MAX_VOCAB:
                    for (k, layer), probe in meta.get("token_probes", {}).items():
                        file = f"{key}/k{k}.layer{layer}.safetensors"
                        (probes_dir / key).mkdir(exist_ok=True)
                        save_file(vocabulary_probe(probe, cls), str(probes_dir / file))
                        explain.append({"model": key, "layer": layer, "offset": k, "file": file})
                atomic_write_json(sidecar, {
                    "model": name, "run": key, "n_layer": n_layer, "k_max": k_max, "classes": class_info,
                    "layers": "0 = embeddings, l = after block l, n_layer = after the final norm",
                    "probe": "prediction = ((h - mean) / scale) @ weight + bias (logits over the classes; the feature)",
                    "eraser": "h' = h - (h - mean) @ proj.T", "penalties": meta["lam"],
                    "probes": explain,  # the same token probes over the vocabulary, for `myopia explain --probes`
                    "result": entry,
                })
            per_run[key] = entry
            by_name.setdefault(name, []).append({k: v for k, v in entry.items() if k != "planning"})
            if "planning" in entry:
                plans.setdefault(name, []).append(entry["planning"])
        models = {name: {**aggregate(entries), "runs": [k for n, k, _ in members if n == name]}
                  for name, entries in by_name.items()}
        return ProbeResult(source=source, task=task_spec, settings=settings, n_layer=n_layer,
                           models=models, runs=per_run if gap_dir is not None else {}, classes=class_info,
                           planning={name: aggregate_planning(e) for name, e in plans.items()})

    config = {"source": source, "task": task_spec, "settings": settings}
    return run_measure("probe", config, specs=[], summarize=summarize, out_dir=out_dir, resume=resume,
                       overwrite=overwrite, progress=progress)
