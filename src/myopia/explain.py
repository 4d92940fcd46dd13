"""`myopia explain`: one prompt, token by token, under a vanilla and a myopic model.

For every position t of a prompt, side by side for the two models (the *reference*,
usually vanilla-trained, and the *compared* one, usually myopic-trained):

* the loss of the actual next token under each model and their difference, the
  per-token gap (myopic - vanilla, nats), with each model's top-5 predictions;
* how much of the gradient the computation at t receives comes from later losses:
  with g_t(tau) = dL_{t+tau}/dtheta_t on this prompt and g_t = sum_tau g_t(tau), the share
  <sum_{tau>=1} g_t(tau), g_t> / ||g_t||^2 and the share of every tau
  (:func:`myopia.gradients.position_gradients`, exact: one backward per loss position).
  For both models it is the *vanilla* gradient at that model's weights: what vanilla
  training asks of the computation at t (the myopic model was trained on the tau = 0
  part only). Positions near the end of a prompt have few later losses to receive from;
* when future-token probes for these models are given (``probes=DIR``), what the state at
  t decodes about tokens t+2..t+K;
* which earlier positions the prediction at t reads most: gradient x input attribution,
  sum_c x_{s,c} * d log p(token t+1) / d x_{s,c}, with x_s the token embedding at
  position s (the model's own top prediction at the last position, which has no next
  token); shares are |a_s| / sum_s |a_s|.

``find_windows`` ranks the windows of the task's held-out (test) split by the mean gap
and returns the N where the compared model loses most (a selection from the tail of
that distribution: the page reports the distribution next to it).

Why this is not a module of ``measures/``: a measure trains runs (or resumes them) and
summarises them through the shared scaffold; explain trains nothing, reads two models
that already exist and describes one prompt, so it has no runs to resume and no config
that a rerun must match. It writes ``explain.json`` with its provenance; the page is
drawn by :mod:`myopia.report.explain_page`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from myopia.policy import GradientPolicy

ROLES = ("vanilla", "myopic")  # reference model, compared model (the keys of every per-model number)
TOP_K = 5
TOP_OFFSETS = 3  # offsets tau named as "dominant" per position
TOP_READS = 5  # earlier positions named per prediction
PROBES_CONTRACT = (
    "every *.json below DIR with a list \"probes\" of {\"model\": run label (e.g. vanilla-seed0) or run path, "
    "\"layer\": index into the model's hidden states (0 = embeddings), \"offset\": k (the probe at position t "
    "predicts token t + k), \"file\": safetensors file (relative to the JSON) holding \"weight\" (V, C) and "
    "optionally \"bias\" (V,)}"
)
DEFINITIONS = {
    "loss": "cross-entropy of the actual next token, nats (natural log)",
    "gap": "myopic_loss - vanilla_loss at the same position (positive: the compared model predicts worse)",
    "future_grad_share": (
        "share of the gradient the computation at position t receives (vanilla gradient of this prompt's loss, "
        "all parameters; share_kv: W_K and W_V only) that comes from losses at t + tau, tau >= 1: "
        "<sum_{tau>=1} g_t(tau), g_t> / ||g_t||^2, exact (one backward per loss position)"
    ),
    "reads": (
        "gradient x input attribution a_s of log p(next token) at position t to the token embedding at each position "
        "s <= t (the model's own top prediction at the last position); share = |a_s| / sum |a|; top: the largest "
        "shares among earlier positions"
    ),
    "probes": "linear probes on the hidden state at t: probability of the actual token t + k and the top guesses",
}


# ---------------------------------------------------------------------- the two models
@dataclass
class ExplainModel:
    """One of the two models: its role, where it came from and the loaded module."""

    role: str  # "vanilla" (reference) or "myopic" (compared)
    label: str  # e.g. "vanilla-seed0" or a model directory's name
    path: str
    policy: str  # the training policy's name (vanilla, myopic, myopic-hidden) or "unknown"
    model: nn.Module = field(repr=False)

    def describe(self) -> dict:
        return {"label": self.label, "path": self.path, "policy": self.policy,
                "params": int(sum(p.numel() for p in self.model.parameters()))}


@dataclass
class ModelPair:
    vanilla: ExplainModel
    myopic: ExplainModel
    tokenizer: object = field(repr=False)  # encode_batch, decode, fingerprint (myopia.data.tokenization)
    task: object | None = field(repr=False)  # the text task (held-out split for find_windows), if known
    context: int | None  # longest prompt both models take (None: no fixed limit)
    source: dict  # how the pair was chosen

    @property
    def models(self) -> tuple[ExplainModel, ExplainModel]:
        return self.vanilla, self.myopic


def _run_policy(run_dir: Path) -> str:
    try:
        return GradientPolicy.from_dict(json.loads((run_dir / "result.json").read_text())["policy"]).name
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown"


def _load_run(run_dir: Path, role: str):
    """(ExplainModel, task) of a run directory written by a myopia measure."""
    from myopia.data import make_task
    from myopia.runs import checkpoint_config, load_checkpoint_model, resolve_checkpoint

    ckpt = resolve_checkpoint(run_dir)
    config = checkpoint_config(ckpt)
    if not config:
        raise FileNotFoundError(
            f"no config.json with task and model above {ckpt}; give a run of `myopia gap` (e.g. OUT/runs/vanilla-seed0) "
            f"or a Hugging Face model directory"
        )
    task = make_task(**config["task"])
    if task.regression:
        raise ValueError(
            f"{run_dir} was trained on {config['task'].get('name')}, a real-valued task; explain needs a token task "
            f"(e.g. a `myopia gap --task text` output)"
        )
    run = ckpt.parent.parent if ckpt.parent.name == "checkpoint" else ckpt.parent
    seed = int(config.get("seed", 0)) if isinstance(config.get("seed"), int) else 0
    model = load_checkpoint_model(ckpt, config["model"], task, seed)
    return ExplainModel(role, run.name, str(run), _run_policy(run), model.eval()), task


def _load_hf_dir(path: Path, role: str):
    from myopia.data.tokenization import load_model_tokenizer
    from myopia.hf import HFCausalLM

    model = HFCausalLM.from_pretrained(path)
    return ExplainModel(role, path.name, str(path), "unknown", model.eval()), load_model_tokenizer(path)


def _task_tokenizer(task, where: Path):
    tok = getattr(task, "tokenizer_obj", None)
    if tok is None:
        raise ValueError(f"the task of {where} ({getattr(task, 'name', '?')}) has no tokenizer to encode a prompt with; "
                         f"explain works on text tasks (e.g. a `myopia gap --task text` output)")
    return tok


def _is_hf_dir(path: Path) -> bool:
    try:
        return "model_type" in json.loads((path / "config.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


def _is_run(path: Path) -> bool:
    return any(c.is_file() for c in (path / "checkpoint" / "model.safetensors", path / "model.safetensors"))


def model_context(model: nn.Module) -> int | None:
    """Longest sequence the model covers (None: no fixed limit, e.g. rotary positions)."""
    cfg = getattr(model, "config", None)
    if hasattr(cfg, "block_size"):
        return int(cfg.block_size)
    if cfg is not None and hasattr(model, "hf"):
        from myopia.hf import max_positions

        return max_positions(cfg)
    return None


def _pair(vanilla: ExplainModel, myopic: ExplainModel, tokenizers, task, source: dict) -> ModelPair:
    fps = [getattr(t, "fingerprint", None) for t in tokenizers]
    if fps[0] != fps[1]:
        raise ValueError(
            f"the two models do not share a tokenizer ({vanilla.label}: {fps[0]}, {myopic.label}: {fps[1]}); "
            f"explain compares predictions token by token, so give two models trained with the same tokenizer"
        )
    vocab = [_vocab_size(m.model) for m in (vanilla, myopic)]
    if vocab[0] != vocab[1]:
        raise ValueError(
            f"the two models predict over different vocabularies ({vanilla.label}: {vocab[0]}, {myopic.label}: "
            f"{vocab[1]}); give two models trained with the same tokenizer"
        )
    limits = [c for c in (model_context(vanilla.model), model_context(myopic.model)) if c is not None]
    return ModelPair(vanilla, myopic, tokenizers[0], task, min(limits) if limits else None, source)


def _vocab_size(model: nn.Module) -> int:
    if hasattr(model, "hf"):
        return int(model.vocab_size)
    return int(model.lm_head.out_features)


def load_gap_pair(gap_dir: str | Path, *, seed: int = 0, variant: str = "kv") -> ModelPair:
    """The vanilla and myopic runs of one seed of a ``myopia gap`` output on a token task."""
    d = Path(gap_dir)
    cfg_path = d / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{d} holds no config.json; give the --out directory of `myopia gap` (e.g. myopia-demo/text)")
    config = json.loads(cfg_path.read_text())
    if config.get("measure") != "gap":
        raise ValueError(f"{d} is a {config.get('measure', 'unknown')} measurement, not a gap; give a `myopia gap` output")
    seeds, detach = config.get("seeds", []), config.get("detach", [])
    if seed not in seeds:
        raise ValueError(f"{d} has no runs for seed {seed}; its seeds are {', '.join(map(str, seeds))} (--seed)")
    if variant not in detach:
        raise ValueError(f"{d} has no myopic runs with detach={variant}; it has {', '.join(detach)} (--variant)")
    name = GradientPolicy(horizon=0, detach=variant).name
    runs = d / "runs"
    van, task = _load_run(runs / f"vanilla-seed{seed}", "vanilla")
    myo, _ = _load_run(runs / f"{name}-seed{seed}", "myopic")
    source = {"gap_dir": str(d), "seed": seed, "variant": variant}
    return _pair(van, myo, [_task_tokenizer(task, d)] * 2, task, source)


def load_model_pair(reference: str | Path, compared: str | Path) -> ModelPair:
    """Any two runs of myopia measures or local Hugging Face model directories; the first is
    the reference (the page's "vanilla" column), the second the compared model ("myopic")."""
    loaded = []
    for role, p in zip(ROLES, (Path(reference), Path(compared))):
        if not p.exists():
            raise FileNotFoundError(f"model {p} does not exist; give a run directory (OUT/runs/KEY) or a model directory")
        if _is_hf_dir(p):
            m, tok = _load_hf_dir(p, role)
            loaded.append((m, tok, None))
        elif _is_run(p):
            m, task = _load_run(p, role)
            loaded.append((m, _task_tokenizer(task, p), task))
        else:
            raise FileNotFoundError(
                f"{p} is neither a run (no checkpoint/model.safetensors) nor a Hugging Face model directory (no config.json)"
            )
    (van, tv, task_v), (myo, tm, task_m) = loaded
    source = {"models": [van.path, myo.path]}
    return _pair(van, myo, [tv, tm], task_v or task_m, source)


# ---------------------------------------------------------------------- prompts
def token_text(tokenizer, token_id: int) -> str:
    """Readable text of one token; a byte that is only part of a UTF-8 character shows as \\xNN."""
    s = tokenizer.decode([int(token_id)])
    if "\ufffd" in s and type(tokenizer).__name__ == "ByteTokenizer" and token_id < 256:
        return f"\\x{int(token_id):02x}"
    return s


def encode_prompt(pair: ModelPair, text: str) -> list[int]:
    """Token ids of ``text``; a clear error for text the tokenizer does not cover, a prompt
    of fewer than 2 tokens or one longer than the models' context."""
    tok = pair.tokenizer
    ids = [int(i) for i in tok.encode_batch([text])[0]]
    unk = getattr(getattr(tok, "tok", None), "unk_token_id", None)
    back = tok.decode(ids)
    missing = sorted(set(text) - set(back))
    if unk is not None and unk in ids and getattr(tok, "eod", None) != unk:
        missing = sorted({c for c in set(text) if unk in tok.encode_batch([c])[0]}) or missing
    if missing:
        shown = ", ".join(repr(c) for c in missing[:8])
        raise ValueError(f"the tokenizer ({tok.fingerprint}) does not cover the character(s) {shown} of the prompt; "
                         f"remove or replace them")
    if len(ids) < 2:
        raise ValueError(f"the prompt {text!r} is {len(ids)} token(s); explain needs at least 2 (one prediction)")
    if pair.context is not None and len(ids) > pair.context:
        raise ValueError(
            f"the prompt is {len(ids)} tokens, longer than the models' context of {pair.context}; shorten it "
            f"(explain shows the prediction after every token, the last one included)"
        )
    n_vocab = min(_vocab_size(m.model) for m in pair.models)
    if max(ids) >= n_vocab:
        raise ValueError(f"the tokenizer gave id {max(ids)}, beyond the models' {n_vocab} outputs; the tokenizer does "
                         f"not belong to these models")
    return ids


def read_prompt_file(path: str | Path) -> list[str]:
    """One prompt per non-empty line; ``\\n`` and ``\\t`` inside a line stand for a newline and a tab."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"prompt file {p} does not exist")
    lines = [ln.rstrip("\n") for ln in p.read_text(encoding="utf-8").splitlines()]
    prompts = [ln.replace("\\n", "\n").replace("\\t", "\t") for ln in lines if ln.strip()]
    if not prompts:
        raise ValueError(f"prompt file {p} holds no prompt (one per non-empty line)")
    return prompts


# ---------------------------------------------------------------------- per-model numbers
def _embedding(model: nn.Module) -> nn.Module:
    if hasattr(model, "hf"):
        return model.hf.get_input_embeddings()
    return model.transformer.wte


def _forward(model: nn.Module, x: torch.Tensor, hidden: bool = False):
    return model(x, policy=GradientPolicy(), return_hidden=hidden) if hidden else model(x, policy=GradientPolicy())


def attribution(model: nn.Module, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """A (T, T): A[t, s] = sum_c e_{s,c} d log p(targets[t] | ids[..t]) / d e_{s,c}, with e the token
    embeddings; zero for s > t (causal). One backward on T copies of the prompt, copy t
    carrying only the log-probability at t."""
    captured = []
    handle = _embedding(model).register_forward_hook(lambda m, i, out: captured.append(out))
    T = ids.shape[0]
    try:
        logits = _forward(model, ids[None].repeat(T, 1))  # (T copies, T, V)
    finally:
        handle.remove()
    emb = captured[0]  # (T copies, T, C)
    ar = torch.arange(T)
    logp = F.log_softmax(logits[ar, ar].double(), -1)  # (T, V): copy t at position t
    (g,) = torch.autograd.grad(logp[ar, targets].sum(), emb)
    return (g * emb.detach()).sum(-1).double()  # (T, T)


def _top(tokenizer, probs: torch.Tensor, k: int) -> list[dict]:
    p, i = probs.topk(min(k, probs.shape[-1]))
    return [{"token": token_text(tokenizer, int(t)), "id": int(t), "prob": float(q)} for q, t in zip(p, i)]


def _probe_rows(model: ExplainModel, probes: list[dict], ids: torch.Tensor, tokenizer) -> list[list[dict]]:
    """Per position: one row per probe of this model, sorted by offset."""
    if not probes:
        return []
    with torch.no_grad():
        _, hidden = _forward(model.model, ids[None], hidden=True)
    T = ids.shape[0]
    rows = [[] for _ in range(T)]
    for pr in sorted(probes, key=lambda p: (p["offset"], p["layer"])):  # checked against the model in load_probes
        h = hidden[pr["layer"]][0].double()  # (T, C)
        W = pr["weight"].double()  # (V, C)
        logits = h @ W.T + (0 if pr.get("bias") is None else pr["bias"].double())
        probs = logits.softmax(-1)
        k = pr["offset"]
        for t in range(T):
            tgt = int(ids[t + k]) if t + k < T else None
            rows[t].append({
                "offset": k, "layer": pr["layer"],
                "target": None if tgt is None else token_text(tokenizer, tgt),
                "target_prob": None if tgt is None or tgt >= probs.shape[1] else float(probs[t, tgt]),
                "top": _top(tokenizer, probs[t], 3),
            })
    return rows


def _model_numbers(m: ExplainModel, ids: torch.Tensor, tokenizer, probes: list[dict]) -> dict:
    """Everything per position for one model on one prompt (T tokens, T - 1 losses)."""
    from myopia.gradients import position_gradients

    T = ids.shape[0]
    with torch.no_grad():
        logits = _forward(m.model, ids[None])[0].double()  # (T, V)
    probs = logits.softmax(-1)
    targets = torch.cat([ids[1:], probs[-1].argmax().view(1)])  # the last position: the model's own top prediction
    A = attribution(m.model, ids, targets)
    loss = F.cross_entropy(logits[:-1], ids[1:], reduction="none")  # (T-1,)

    def ce(out, y):  # (B, T) per-position cross-entropy
        return F.cross_entropy(out.reshape(-1, out.shape[-1]).float(), y.reshape(-1), reduction="none").view(y.shape)

    pg = position_gradients(m.model, (ids[None, :-1], ids[None, 1:]), ce)
    shares = pg.offset_shares("total")  # (T-1, T-1) [t, tau]
    kv = pg.future_share("all:W_K+W_V") if "all:W_K+W_V" in pg.inner else None
    return {"loss": loss, "probs": probs, "attribution": A, "shares": shares, "future": pg.future_share("total"),
            "future_kv": kv, "norm": pg.sq_norm["total"].sqrt(), "probes": _probe_rows(m, probes, ids, tokenizer)}


def _grad_entry(n: dict, t: int, T: int) -> dict | None:
    if t >= T - 1:
        return None
    row = n["shares"][t, : T - 1 - t]  # tau = 0 .. T-2-t
    order = sorted(range(1, len(row)), key=lambda tau: -float(row[tau]))[:TOP_OFFSETS]
    return {
        "share": float(n["future"][t]),
        "share_kv": None if n["future_kv"] is None else float(n["future_kv"][t]),
        "by_offset": [float(v) for v in row],
        "top_offsets": [{"tau": tau, "share": float(row[tau])} for tau in order],
        "grad_norm": float(n["norm"][t]),
    }


def _reads_entry(n: dict, t: int, ids: torch.Tensor, tokenizer) -> dict:
    a = n["attribution"][t, : t + 1]
    total = float(a.abs().sum())
    share = (a.abs() / total) if total > 0 else torch.zeros_like(a)
    earlier = sorted(range(t), key=lambda s: -float(share[s]))[:TOP_READS]
    return {
        "attribution": [float(v) for v in a],  # per position s <= t; share = |a_s| / sum |a|
        "self_share": float(share[t]),
        "top": [{"position": s, "token": token_text(tokenizer, int(ids[s])), "share": float(share[s]),
                 "attribution": float(a[s])} for s in earlier],
    }


def explain_ids(pair: ModelPair, ids: list[int], probes: dict[str, list[dict]] | None = None) -> dict:
    """Every number of the page for one prompt (token ids), both models."""
    tok = pair.tokenizer
    x = torch.tensor(ids, dtype=torch.long)
    T = len(ids)
    probes = probes or {}
    nums = {m.role: _model_numbers(m, x, tok, probes.get(m.role, [])) for m in pair.models}
    tokens = []
    for t in range(T):
        nxt = t < T - 1
        v = float(nums["vanilla"]["loss"][t]) if nxt else None
        my = float(nums["myopic"]["loss"][t]) if nxt else None
        grad = {r: _grad_entry(nums[r], t, T) for r in ROLES}
        entry = {
            "position": t,
            "token": token_text(tok, ids[t]),
            "token_id": ids[t],
            "next_token": token_text(tok, ids[t + 1]) if nxt else None,
            "vanilla_loss": v,
            "myopic_loss": my,
            "gap": (my - v) if nxt else None,
            "prob": {r: (float(nums[r]["probs"][t, ids[t + 1]]) if nxt else None) for r in ROLES},
            "top5": {r: _top(tok, nums[r]["probs"][t], TOP_K) for r in ROLES},
            "future_grad_share": grad["vanilla"]["share"] if grad["vanilla"] else None,
            "future_grad": grad,
            "reads": {r: _reads_entry(nums[r], t, x, tok) for r in ROLES},
        }
        if any(nums[r]["probes"] for r in ROLES):
            entry["probes"] = {r: (nums[r]["probes"][t] if nums[r]["probes"] else []) for r in ROLES}
        tokens.append(entry)
    gaps = [e["gap"] for e in tokens if e["gap"] is not None]
    return _rounded({
        "text": tok.decode(ids),
        "n_tokens": T,
        "mean_gap": sum(gaps) / len(gaps),
        "mean_loss": {r: sum(e[f"{r}_loss"] for e in tokens[:-1]) / (T - 1) for r in ROLES},
        "tokens": tokens,
    })


def _rounded(obj, digits: int = 6):
    """Every float to ``digits`` significant digits: the page shows at most four, and a prompt's
    JSON stays a few hundred kB."""
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}")
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v, digits) for v in obj]
    return obj


# ---------------------------------------------------------------------- probes
def load_probes(probes_dir: str | Path | None, pair: ModelPair) -> tuple[dict[str, list[dict]], dict]:
    """Probes of the two models found below ``probes_dir`` (see :data:`PROBES_CONTRACT`), and a
    note for the page. No directory, or none for these models: an empty dict and the reason."""
    if probes_dir is None:
        return {}, {"dir": None, "found": 0, "note": "no probes given (--probes DIR, written by `myopia probe`)"}
    d = Path(probes_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"probes directory {d} does not exist; give the --out directory of `myopia probe`")
    from safetensors.torch import load_file

    found: dict[str, list[dict]] = {r: [] for r in ROLES}
    keys = {m.role: {m.label, str(Path(m.path).resolve())} for m in pair.models}
    seen = 0
    for js in sorted(d.rglob("*.json")):
        try:
            data = json.loads(js.read_text())
        except (OSError, ValueError):
            continue
        entries = data.get("probes") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            continue
        for e in entries:
            if not isinstance(e, dict) or not {"model", "layer", "offset", "file"} <= set(e):
                continue
            seen += 1
            name = str(e["model"])
            for role, names in keys.items():
                resolved = str((js.parent / name).resolve()) if not Path(name).is_absolute() else str(Path(name).resolve())
                if name in names or resolved in names:
                    tensors = load_file(str(js.parent / e["file"]))
                    if "weight" not in tensors:
                        raise ValueError(f"probe file {js.parent / e['file']} holds no 'weight' tensor")
                    found[role].append({"layer": int(e["layer"]), "offset": int(e["offset"]), "file": str(e["file"]),
                                        "weight": tensors["weight"], "bias": tensors.get("bias")})
    for m in pair.models:  # a probe that does not fit its model is an error now, before anything is written
        if found[m.role]:
            with torch.no_grad():
                _, hidden = _forward(m.model, torch.zeros(1, 1, dtype=torch.long), hidden=True)
            for pr in found[m.role]:
                if not 0 <= pr["layer"] < len(hidden):
                    raise ValueError(f"probe {pr['file']} reads layer {pr['layer']}; {m.label} has hidden states "
                                     f"0..{len(hidden) - 1}")
                if pr["weight"].dim() != 2 or pr["weight"].shape[1] != hidden[pr["layer"]].shape[-1]:
                    raise ValueError(f"probe {pr['file']} has weight {tuple(pr['weight'].shape)}; {m.label} needs "
                                     f"(V, {hidden[pr['layer']].shape[-1]}) at layer {pr['layer']}")
    n = sum(len(v) for v in found.values())
    if n == 0:
        why = (f"{d} holds {seen} probe(s), none for {pair.vanilla.label} or {pair.myopic.label}" if seen
               else f"{d} holds no probes (expected: {PROBES_CONTRACT})")
        return {}, {"dir": str(d), "found": 0, "note": why}
    offsets = sorted({p["offset"] for v in found.values() for p in v})
    return found, {"dir": str(d), "found": n, "offsets": offsets,
                   "per_model": {r: len(v) for r, v in found.items()}, "note": ""}


# ---------------------------------------------------------------------- held-out search
@torch.no_grad()
def find_windows(pair: ModelPair, n: int, *, max_windows: int = 4096, batch_size: int = 64) -> tuple[list[dict], dict]:
    """The ``n`` windows of the test split with the largest mean gap (compared - reference).

    Windows are the task's held-out contexts (``seq_len`` tokens each, no overlap), at most
    ``max_windows`` of them from the start of the split; the mean gap of a window is over
    its ``seq_len - 1`` next-token predictions, as on the page."""
    task = pair.task
    if task is None:
        raise ValueError("--find searches the held-out split of the models' text task; give runs of a myopia measure "
                         "(or --gap-dir), or explain your own prompts (TEXT or --file)")
    if n < 1:
        raise ValueError(f"--find N needs N >= 1, got {n}")
    total = min(task.n_contexts["test"], max_windows)
    if n > total:
        raise ValueError(f"the test split has {total} windows; ask for at most {total} (--find)")
    T = task.seq_len
    if pair.context is not None and T > pair.context:
        raise ValueError(f"the task's windows ({T} tokens) are longer than the models' context of {pair.context}")
    gaps, losses = [], {r: [] for r in ROLES}
    windows = []
    for b in range(math.ceil(total / batch_size)):
        x, _ = task.batch("test", b, batch_size)  # contexts b*B .. b*B+B-1 (wrapping past the end)
        keep = min(batch_size, total - b * batch_size)
        x = x[:keep]
        per = {}
        for m in pair.models:
            logits = _forward(m.model, x).double()  # (B, T, V)
            per[m.role] = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                          reduction="none").view(keep, T - 1).mean(1)
        for r in ROLES:
            losses[r] += per[r].tolist()
        gaps += (per["myopic"] - per["vanilla"]).tolist()
        windows += [row.tolist() for row in x]
    order = sorted(range(total), key=lambda i: -gaps[i])[:n]
    g = torch.tensor(gaps, dtype=torch.float64)
    q = torch.quantile(g, torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64)).tolist()
    summary = {
        "split": "test", "windows": total, "window_tokens": T,
        "mean_gap": float(g.mean()), "gap_q05_median_q95": q,
        "mean_loss": {r: sum(v) / len(v) for r, v in losses.items()},
        "selected": [{"window": i, "rank": k + 1, "mean_gap": gaps[i]} for k, i in enumerate(order)],
        "note": (f"the {n} of {total} held-out windows with the largest mean gap: a selection from the tail, "
                 f"not typical windows (median window gap {q[1]:+.3f})"),
    }
    return [{"ids": windows[i], "source": f"held-out window {i} (test split, tokens {i * T}..{i * T + T - 1}), "
             f"rank {k + 1} of {total} by mean gap"} for k, i in enumerate(order)], summary


# ---------------------------------------------------------------------- one call
@dataclass
class ExplainResult:
    """explain.json: the two models, every prompt's per-token numbers, and how they were chosen."""

    models: dict  # role -> {"label", "path", "policy", "params"}
    source: dict  # gap_dir/seed/variant or models
    task: dict | None
    tokenizer: str
    context: int | None
    prompts: list[dict]  # each: {"source", "text", "n_tokens", "mean_gap", "mean_loss", "tokens": [...]}
    tokens: list[dict]  # the first prompt's tokens (the only one for `myopia explain "TEXT"`)
    search: dict | None = None  # --find: the distribution the windows were selected from
    probes: dict = field(default_factory=dict)
    definitions: dict = field(default_factory=lambda: dict(DEFINITIONS))
    provenance: dict = field(default_factory=dict)

    measure = "explain"

    def to_dict(self) -> dict:
        return {"measure": self.measure, **asdict(self)}


def explain(
    pair: ModelPair,
    prompts: list[str] | None = None,
    *,
    find: int = 0,
    probes_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    overwrite: bool = False,
) -> ExplainResult:
    """Explain ``prompts`` (texts) and/or the ``find`` held-out windows where the compared model
    loses most. With ``out_dir``, writes ``explain.json`` there (the page is
    ``myopia.report.explain_page.write_explain_page``). Every input is checked before anything
    is written."""
    from myopia.results import atomic_write_text, prepare_out_dir, provenance

    prompts = list(prompts or [])
    if not prompts and not find:
        raise ValueError("give a prompt (TEXT), a prompt file (--file) or --find N")
    encoded = [(f"prompt {k + 1}" if len(prompts) > 1 else "prompt", encode_prompt(pair, p)) for k, p in enumerate(prompts)]
    probes, probe_note = load_probes(probes_dir, pair)
    search = None
    if find:
        windows, search = find_windows(pair, find)
        encoded += [(w["source"], w["ids"]) for w in windows]
    if out_dir is not None:
        out = prepare_out_dir(out_dir, resume=False, overwrite=overwrite, measure="explain")
    was = {m.role: m.model.training for m in pair.models}
    for m in pair.models:
        m.model.eval()
    try:
        explained = [{"source": src, **explain_ids(pair, ids, probes)} for src, ids in encoded]
    finally:
        for m in pair.models:
            m.model.train(was[m.role])
    result = ExplainResult(
        models={m.role: m.describe() for m in pair.models}, source=pair.source,
        task=None if pair.task is None else pair.task.to_dict(), tokenizer=str(pair.tokenizer.fingerprint),
        context=pair.context, prompts=explained, tokens=explained[0]["tokens"], search=search, probes=probe_note,
        provenance=provenance(),
    )
    if out_dir is not None:  # compact: a page of many windows holds ~10^5 numbers
        atomic_write_text(out / "explain.json", json.dumps(result.to_dict(), separators=(",", ":"), allow_nan=False) + "\n")
    return result
