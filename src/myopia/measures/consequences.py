"""Output-side myopia: are a model's *predictions* shaped by their consequences?

The rest of myopia is about activations (the computation at i is trained by later losses
through attention). This measure is about outputs. Under teacher forcing the ground truth
is fixed whatever the model predicts, so nothing in training rewards predicting a token
because it makes the following text easier to predict (a *self-fulfilling* prediction),
and nothing punishes predictions that chain into bad generations (loops). On a source
whose law q is known exactly (:class:`myopia.data.branching.BranchingSource`: at a branch
token an easy and a hard entry have the same q, and only what follows them differs) that
claim is measured three ways:

1. **Self-fulfilling bias** of a model p: at every position where the source offers pairs
   (e_k, h_k) with q(e_k) = q(h_k) > 0, the q-weighted mean over pairs of

       [log p(e_k) - log p(h_k)] - [log q(e_k) - log q(h_k)]

   (the mean of log p/q over easy minus hard entries); 0 for p = q, > 0 when p moves
   probability toward tokens whose continuations are easy. Also reported there: the share
   of the pairs' mass p puts on easy entries (q: 0.5), and KL(q‖p) split into its easy-entry
   and hard-entry terms (they add up to the KL at those positions); and over all positions
   KL(q‖p), the excess loss over the source's entropy.
2. **Free-running drift**: from prompts of source text each model generates, greedily and
   by sampling (a sliding window of its context); per window of generated positions the
   total-variation distance between the empirical n-gram law of its text and the source's
   exact stationary n-gram law, the share of sequences that end in a loop (their last
   ``loop_window`` tokens repeat with a period <= loop_window / 2; Wilson interval), the
   share of steps the source never makes, and how often an entry chosen is an easy one.
   The exact source, generating through the same code, gives each number's floor.
3. **Positive control**: the vanilla model fine-tuned with a policy-gradient objective in
   which its own sampled tokens and the source's reaction to them are the training game
   (:mod:`myopia.reinforce`, through ``train(..., objective=...)``) — the bias must move
   for it, or the measure measures nothing. ``finetune`` is the same fine-tune (steps, lr,
   data) with teacher forcing only, so the control's shift cannot be put down to the
   extra steps.

Models, all from one initialisation and data order per seed: ``vanilla`` and ``myopic``
(strict myopia, ``detach="kv"``, exact G(0); ``myopic-hidden`` with ``detach="hidden"``)
trained by teacher forcing; ``control`` and ``finetune`` fine-tuned from that seed's
vanilla model. The bias and the other prediction statistics are means over the held-out
(test) batches per seed, with a 95% Student-t interval over seeds; drift curves are means
over seeds with every seed's curve kept.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from myopia.generation import generate, seeded_generator
from myopia.measures.scaffold import MeasureResult, as_detach, as_seeds, as_task, run_measure
from myopia.policy import GradientPolicy
from myopia.presets import (
    CONSEQUENCES_CONTROL, CONSEQUENCES_DRIFT, CONSEQUENCES_MODEL, CONSEQUENCES_SEEDS, CONSEQUENCES_TASK,
    CONSEQUENCES_TRAIN,
)
from myopia.results import format_ci, mean_ci95, wilson95
from myopia.runs import RunSpec, build_model, load_checkpoint_model, resolve_checkpoint, run_all
from myopia.train import TrainConfig

# What a token source must offer (BranchingSource does): its exact law, samples that can
# continue from any token (the control's world; a first-order source), and what summarises it.
KNOWN_LAW = ("next_token_law", "source_log_prob", "ngram_law", "sample", "pairs", "entropy_rate",
             "continuation_entropy")
MAX_NGRAM_CELLS = 1 << 22  # V**n cells of an n-gram law held in memory


@dataclass
class ControlConfig:
    """The positive control: the vanilla model fine-tuned by policy gradient (myopia.reinforce)."""

    steps: int = CONSEQUENCES_CONTROL["steps"]  # fine-tune steps from the vanilla model
    lr: float = CONSEQUENCES_CONTROL["lr"]  # peak learning rate of the fine-tune
    weight: float = CONSEQUENCES_CONTROL["weight"]  # weight of the policy-gradient term next to the teacher-forced loss
    continuation_len: int = CONSEQUENCES_CONTROL["continuation_len"]  # tokens the source continues after the model's sampled token
    reward_floor: float = CONSEQUENCES_CONTROL["reward_floor"]  # log q counted for a step the source never makes

    def __post_init__(self) -> None:
        checks = [
            (self.steps >= 1, f"control steps must be >= 1, got {self.steps}"),
            (self.lr > 0, f"control lr must be > 0, got {self.lr}"),
            (self.weight > 0, f"control weight must be > 0 (a positive control needs the policy-gradient term), "
                              f"got {self.weight}"),
            (self.continuation_len >= 1, f"control continuation_len must be >= 1 (the consequence of a token), "
                                         f"got {self.continuation_len}"),
            (self.reward_floor < 0, f"control reward_floor must be < 0 (a log-probability), got {self.reward_floor}"),
        ]
        _raise_first(checks)

    def to_dict(self) -> dict:
        return asdict(self)

    def train_config(self, base: TrainConfig) -> TrainConfig:
        """The fine-tune's training: the teacher-forced runs' settings with this budget."""
        return TrainConfig(**{**base.to_dict(), "steps": self.steps, "lr": self.lr,
                              "warmup_steps": min(base.warmup_steps, self.steps // 10),
                              "eval_every": min(base.eval_every, self.steps),
                              "checkpoint_every": min(base.checkpoint_every, self.steps)})

    def objective(self) -> dict:
        """The run-spec name of the policy-gradient objective (:func:`myopia.runs.resolve_objective`)."""
        return {"fn": "myopia.reinforce:consequence_objective",
                "args": {"weight": self.weight, "continuation_len": self.continuation_len,
                         "reward_floor": self.reward_floor}}


@dataclass
class DriftConfig:
    """Free-running generation: how much text, and how it is compared with the source."""

    samples: int = CONSEQUENCES_DRIFT["samples"]  # generated sequences per model, seed and decoding
    prompt_len: int = CONSEQUENCES_DRIFT["prompt_len"]  # source tokens each generation starts from
    length: int = CONSEQUENCES_DRIFT["length"]  # tokens generated after the prompt
    window: int = CONSEQUENCES_DRIFT["window"]  # generated positions per point of the n-gram divergence curve
    ngram: int = CONSEQUENCES_DRIFT["ngram"]  # n of the n-gram law compared with the source's
    loop_window: int = CONSEQUENCES_DRIFT["loop_window"]  # a sequence loops if its last tokens repeat with period <= this/2
    temperature: float = CONSEQUENCES_DRIFT["temperature"]  # sampling temperature (greedy decoding is measured too)

    def __post_init__(self) -> None:
        checks = [
            (self.samples >= 1, f"samples must be >= 1, got {self.samples}"),
            (self.ngram >= 1, f"ngram must be >= 1, got {self.ngram}"),
            (self.prompt_len >= max(1, self.ngram - 1),
             f"prompt_len must be >= max(1, ngram - 1) = {max(1, self.ngram - 1)} (the first generated n-gram "
             f"starts in the prompt), got {self.prompt_len}"),
            (1 <= self.window <= self.length, f"window must be in [1, length={self.length}], got {self.window}"),
            (self.length % self.window == 0, f"length ({self.length}) must be a multiple of window ({self.window})"),
            (2 <= self.loop_window <= self.length, f"loop_window must be in [2, length={self.length}], got {self.loop_window}"),
            (self.temperature > 0, f"temperature must be > 0, got {self.temperature}"),
        ]
        _raise_first(checks)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def lengths(self) -> list[int]:
        """Generated length at the end of each window: the x-axis of the drift curves."""
        return list(range(self.window, self.length + 1, self.window))


def _raise_first(checks: list[tuple[bool, str]]) -> None:
    for ok, msg in checks:
        if not ok:
            raise ValueError(msg)


@dataclass
class ConsequencesResult(MeasureResult):
    measure = "consequences"

    task: dict
    model: dict
    train: dict
    control: dict
    drift: dict
    seeds: list[int]
    detach: list[str]
    source: dict  # the exact source: entropy rate, continuation entropies, its own drift numbers (the floors)
    models: dict  # name -> bias {mean, ci95}, loop_rate, ngram_divergence [by length], ... (see module docstring)
    lengths: list[int]  # generated length at the end of each drift window
    wall_time_s: float = 0.0
    summary: str = ""  # the answer in one line: each model's bias with its interval
    curves: dict = field(default_factory=dict)  # run key -> training curve
    note: str = ""


# ---------------------------------------------------------------------- the bias measure
class SourceModel(nn.Module):
    """The source itself as a model: logits log q (−inf where q = 0). Its bias is 0 exactly and
    its generations are samples of the source, through the same code as a trained model's."""

    def __init__(self, task):
        super().__init__()
        self.task = task

    def forward(self, x: torch.Tensor, policy: GradientPolicy | None = None) -> torch.Tensor:
        return self.task.next_token_law(x).log().float()  # (B, T, V)


def branch_statistics(logits: torch.Tensor, x: torch.Tensor, task) -> dict[str, torch.Tensor]:
    """Per-position statistics (N,) float64 at the N positions of ``x`` (B, T) where the source
    offers at least one pair (q(e_k) > 0 and q(h_k) > 0); ``logits`` (B, T, V).

    ``bias``: Σ_k w_k ([log p(e_k) − log p(h_k)] − [log q(e_k) − log q(h_k)]) / Σ_k w_k with
    w_k = q(e_k) + q(h_k); ``easy_mass``: Σ p(e_k) / Σ (p(e_k) + p(h_k)); ``kl_easy`` /
    ``kl_hard``: Σ_{v easy / hard} q(v) log(q(v) / p(v)) (together the KL there)."""
    q = task.next_token_law(x)  # (B, T, V) float64
    logp = F.log_softmax(logits.double(), -1)
    easy = torch.tensor([e for e, _ in task.pairs])
    hard = torch.tensor([h for _, h in task.pairs])
    qe, qh = q[..., easy], q[..., hard]  # (B, T, K)
    both = (qe > 0) & (qh > 0)
    w = torch.where(both, qe + qh, torch.zeros_like(qe))
    at = w.sum(-1) > 0  # (B, T) positions with a pair on offer
    shift = torch.where(both, (logp[..., easy] - logp[..., hard]) - (qe.log() - qh.log()), torch.zeros_like(qe))

    def kl_terms(idx: torch.Tensor) -> torch.Tensor:
        qq = q[..., idx]
        return torch.where(qq > 0, qq * (qq.log() - logp[..., idx]), torch.zeros_like(qq)).sum(-1)

    pe, ph = logp[..., easy].exp().sum(-1), logp[..., hard].exp().sum(-1)
    return {
        "bias": ((w * shift).sum(-1) / w.sum(-1).clamp_min(1e-300))[at],
        "easy_mass": (pe / (pe + ph))[at],
        "kl_easy": kl_terms(easy)[at],
        "kl_hard": kl_terms(hard)[at],
    }


def self_fulfilling_bias(logits: torch.Tensor, x: torch.Tensor, task) -> float:
    """Mean self-fulfilling bias (nats of log-odds toward easy entries) over the positions of
    ``x`` where the source offers a pair; see :func:`branch_statistics`."""
    b = branch_statistics(logits, x, task)["bias"]
    if b.numel() == 0:
        raise ValueError("no position in x offers an (easy, hard) pair; use longer or more sequences")
    return float(b.mean())


def kl_to_source(logits: torch.Tensor, x: torch.Tensor, task) -> torch.Tensor:
    """KL(q‖p) (B, T) at every position: the model's loss minus the source's entropy there."""
    q = task.next_token_law(x)
    logp = F.log_softmax(logits.double(), -1)
    return torch.where(q > 0, q * (q.log() - logp), torch.zeros_like(q)).sum(-1)


@torch.no_grad()
def prediction_statistics(model: nn.Module, task, *, batches: int, batch_size: int) -> dict[str, float]:
    """Means over the held-out (test) batches: the branch statistics (over positions with a pair
    on offer), ``excess_loss`` = KL(q‖p) and ``test_loss`` (over all positions)."""
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {}
    kl, loss = [], []
    for i in range(batches):
        x, y = task.batch("test", i, batch_size)
        logits = model(x)
        for k, v in branch_statistics(logits, x, task).items():
            parts.setdefault(k, []).append(v)
        kl.append(kl_to_source(logits, x, task).reshape(-1))
        loss.append(task.loss(logits, y).double().reshape(-1))
    out = {k: float(torch.cat(v).mean()) for k, v in parts.items()}
    out["positions_with_pair"] = int(torch.cat(parts["bias"]).numel())
    out["excess_loss"] = float(torch.cat(kl).mean())
    out["test_loss"] = float(torch.cat(loss).mean())
    return out


# ---------------------------------------------------------------------- free-running drift
def text_statistics(seq: torch.Tensor, task, drift: DriftConfig) -> dict:
    """Statistics of (B, prompt_len + length) sequences whose last ``length`` tokens were generated."""
    V, n, P = task.vocab_size, drift.ngram, drift.prompt_len
    law = task.ngram_law(n).float()  # (V**n,)
    code = torch.zeros(seq.shape[0], seq.shape[1] - n + 1, dtype=torch.long)  # n-gram ending at t = index + n - 1
    for i in range(n):
        code = code * V + seq[:, i: seq.shape[1] - n + 1 + i]
    gen_codes = code[:, P - n + 1:]  # (B, length): n-grams ending at each generated position
    tv = []
    for start in range(0, drift.length, drift.window):
        c = gen_codes[:, start: start + drift.window].reshape(-1)
        emp = torch.bincount(c, minlength=V ** n).float() / c.numel()
        tv.append(0.5 * float((emp - law).abs().sum()))
    tail = seq[:, -drift.loop_window:]
    looped = torch.zeros(seq.shape[0], dtype=torch.bool)
    for d in range(1, drift.loop_window // 2 + 1):
        looped |= (tail[:, d:] == tail[:, :-d]).all(1)
    steps = task.source_log_prob(seq[:, :-1], seq[:, 1:])[:, P - 1:]  # (B, length) log q of each generated step
    new = seq[:, P:]
    n_easy = int(torch.isin(new, torch.tensor([e for e, _ in task.pairs])).sum())
    n_hard = int(torch.isin(new, torch.tensor([h for _, h in task.pairs])).sum())
    return {
        "ngram_divergence": tv,
        "loops": int(looped.sum()),
        "sequences": int(seq.shape[0]),
        "invalid_rate": float(torch.isinf(steps).float().mean()),
        "easy_choice_rate": n_easy / (n_easy + n_hard) if n_easy + n_hard else None,
    }


@torch.no_grad()
def free_running(model: nn.Module, task, drift: DriftConfig, seed: int, *, greedy: bool) -> dict:
    """Generate from seeded source prompts (the same prompts and random numbers for every model
    at one seed) and measure the text."""
    prompts = task.sample(drift.samples, drift.prompt_len, seeded_generator("consequences-prompts", seed))
    seq = generate(model, prompts, drift.length, greedy=greedy, temperature=drift.temperature,
                   generator=seeded_generator("consequences-generate", seed))
    return text_statistics(seq, task, drift)


def pool_drift(per_seed: list[dict]) -> dict:
    """One model's drift numbers over seeds: means, every seed's values, a Wilson interval of
    the loop rate over the pooled sequences."""
    loops, n = sum(d["loops"] for d in per_seed), sum(d["sequences"] for d in per_seed)
    curves = [d["ngram_divergence"] for d in per_seed]
    easy = [d["easy_choice_rate"] for d in per_seed if d["easy_choice_rate"] is not None]
    return {
        "loop_rate": loops / n,
        "loop_rate_ci95": wilson95(loops, n),
        "loop_rate_per_seed": [d["loops"] / d["sequences"] for d in per_seed],
        "ngram_divergence": [sum(col) / len(col) for col in zip(*curves)],
        "ngram_divergence_per_seed": curves,
        "invalid_rate": sum(d["invalid_rate"] for d in per_seed) / len(per_seed),
        "easy_choice_rate": sum(easy) / len(easy) if easy else None,
        "easy_choice_rate_per_seed": [d["easy_choice_rate"] for d in per_seed],
    }


# ---------------------------------------------------------------------- the measure
def check_known_law(task) -> None:
    missing = [a for a in KNOWN_LAW if not hasattr(task, a)]
    if missing or task.regression:
        raise ValueError(
            f"task {task.name!r} has no known law ({', '.join(missing) or 'regression'}); output-side myopia needs "
            f"a token source whose next-token law is exact: use --task branching"
        )
    if not task.pairs:
        raise ValueError(f"task {task.name!r} offers no (easy, hard) pairs; the self-fulfilling bias is undefined")


def consequence_specs(task: dict, model: dict, train: TrainConfig, control: ControlConfig, seeds: list[int],
                      detach: list[str]) -> tuple[list[RunSpec], list[RunSpec]]:
    """(teacher-forced runs, fine-tunes of each seed's vanilla model): the second list needs
    the first finished."""
    teacher_forced, finetunes = [], []
    tune = control.train_config(train).to_dict()
    vanilla = GradientPolicy().to_dict()
    for s in seeds:
        teacher_forced.append(RunSpec(f"vanilla-seed{s}", model, task, vanilla, train.to_dict(), s))
        for d in detach:
            pol = GradientPolicy(horizon=0, detach=d)
            teacher_forced.append(RunSpec(f"{pol.name}-seed{s}", model, task, pol.to_dict(), train.to_dict(), s))
        start = {"init_from": f"vanilla-seed{s}"}
        finetunes.append(RunSpec(f"control-seed{s}", model, task, vanilla, tune, s,
                                 extra={**start, "objective": control.objective()}))
        finetunes.append(RunSpec(f"finetune-seed{s}", model, task, vanilla, tune, s, extra=start))
    return teacher_forced, finetunes


MODEL_ROLES = {
    "vanilla": "teacher-forced, vanilla gradient",
    "myopic": "teacher-forced, strict myopic gradient (detach=kv, exact G(0))",
    "myopic-hidden": "teacher-forced, the paper's myopic gradient (detach=hidden)",
    "control": "positive control: the vanilla model fine-tuned by policy gradient on its own sampled tokens",
    "finetune": "the control's fine-tune (same steps, lr, data) with teacher forcing only",
}


def output_myopia(
    task: str | dict = CONSEQUENCES_TASK,
    *,
    model: dict | None = None,
    train: TrainConfig | None = None,
    control: ControlConfig | None = None,
    drift: DriftConfig | None = None,
    seeds: int | list[int] = CONSEQUENCES_SEEDS,
    detach: str | list[str] = "kv",
    out_dir: str | Path = "runs/consequences",
    resume: bool = False,
    overwrite: bool = False,
    workers: int = 0,
    progress: bool = True,
) -> ConsequencesResult:
    """Measure whether teacher-forced (vanilla, myopic) models' predictions are shaped by their
    consequences, against a positive control that is; the same as ``myopia consequences``.

    Defaults: :data:`myopia.presets.CONSEQUENCES_TASK` (the ``branching`` source),
    ``CONSEQUENCES_MODEL``, ``CONSEQUENCES_TRAIN``, ``CONSEQUENCES_CONTROL``,
    ``CONSEQUENCES_DRIFT``. Writes ``results.json`` and ``config.json`` to ``out_dir``; every
    run keeps its checkpoint, so ``resume=True`` continues a killed measurement.
    """
    t0 = time.perf_counter()
    task_obj, task_spec = as_task(task)
    check_known_law(task_obj)
    model = {**CONSEQUENCES_MODEL, **(model or {})} if (model or {}).get("kind", "gpt") == "gpt" else dict(model)
    train = train or TrainConfig(**CONSEQUENCES_TRAIN)
    control, drift = control or ControlConfig(), drift or DriftConfig()
    seeds, detach = as_seeds(seeds), as_detach(detach)
    if train.batch_size < 2:
        raise ValueError(f"the control's policy-gradient baseline needs batch_size >= 2, got {train.batch_size}")
    if task_obj.vocab_size ** drift.ngram > MAX_NGRAM_CELLS:
        raise ValueError(f"an n-gram law over {task_obj.vocab_size} tokens with n = {drift.ngram} has too many cells; "
                         f"lower --ngram")
    build_model(model, task_obj, 0)  # a model that does not fit the task fails here, before anything is written
    teacher_forced, finetunes = consequence_specs(task_spec, model, train, control, seeds, detach)

    def summarize(runs, out: Path) -> ConsequencesResult:
        runs = {**runs, **run_all(finetunes, out / "runs", workers=workers, progress=progress,
                                  desc="consequences: fine-tunes")}
        threads = torch.get_num_threads()
        if train.threads:  # the analysis runs small models step by step, like the runs: same thread count
            torch.set_num_threads(train.threads)
        try:
            return analyse(runs, out)
        finally:
            torch.set_num_threads(threads)

    def analyse(runs, out: Path) -> ConsequencesResult:
        names = ["vanilla", *(GradientPolicy(horizon=0, detach=d).name for d in detach), "control", "finetune"]
        by_key = {s.key: s for s in teacher_forced + finetunes}
        models = {}
        for name in names:
            stats, sampled, greedy = [], [], []
            for s in seeds:
                spec = by_key[f"{name}-seed{s}"]
                net = load_checkpoint_model(resolve_checkpoint(out / "runs" / spec.key), model, task_obj, s)
                stats.append(prediction_statistics(net, task_obj, batches=train.test_batches,
                                                   batch_size=train.batch_size))
                sampled.append(free_running(net, task_obj, drift, s, greedy=False))
                greedy.append(free_running(net, task_obj, drift, s, greedy=True))
            models[name] = {
                "role": MODEL_ROLES[name],
                "policy": GradientPolicy.from_dict(by_key[f"{name}-seed{seeds[0]}"].policy).name,
                **{k: mean_ci95([st[k] for st in stats]) for k in ("bias", "easy_mass", "kl_easy", "kl_hard",
                                                                    "excess_loss")},
                "bias_per_seed": [st["bias"] for st in stats],
                "bias_excludes_zero": _excludes_zero(mean_ci95([st["bias"] for st in stats])),
                "test_loss_per_seed": [st["test_loss"] for st in stats],
                **pool_drift(sampled),
                "greedy": pool_drift(greedy),
            }
        source = SourceModel(task_obj)
        x, _ = task_obj.batch("test", 0, train.batch_size)
        ent = task_obj.continuation_entropy()
        source_stats = {
            "entropy_rate": task_obj.entropy_rate(),
            "bias": self_fulfilling_bias(source(x), x, task_obj),  # 0 exactly: the measure's own zero
            "continuation_entropy": {"easy": [float(ent[e]) for e, _ in task_obj.pairs],
                                     "hard": [float(ent[h]) for _, h in task_obj.pairs]},
            **pool_drift([free_running(source, task_obj, drift, s, greedy=False) for s in seeds]),
            "greedy": pool_drift([free_running(source, task_obj, drift, s, greedy=True) for s in seeds]),
        }
        return ConsequencesResult(
            task=task_spec, model=model, train=train.to_dict(), control=control.to_dict(), drift=drift.to_dict(),
            seeds=seeds, detach=detach, source=source_stats, models=models, lengths=drift.lengths,
            wall_time_s=time.perf_counter() - t0, curves={k: r.curve for k, r in runs.items()},
            summary="self-fulfilling bias (nats, 95% CI over seeds): " + "; ".join(
                f"{name} {m['bias']['mean']:+.3f} {format_ci(m['bias'], '+.3f')}" for name, m in models.items()),
            note=("bias: q-weighted mean over (easy, hard) pairs of [log p(e)-log p(h)] - [log q(e)-log q(h)] at "
                  "positions where the source offers pairs (nats; 0 for p = q); mean and 95% t-interval over seeds. "
                  "myopic = strict myopia (detach=kv). Drift: sampled decoding at top level, greedy under 'greedy'; "
                  "ngram_divergence = total variation between the generated text's empirical n-gram law and the "
                  "source's, per window of generated positions ending at 'lengths'; the source's own numbers are "
                  "the floor of a finite sample. loop_rate_ci95: Wilson interval over the pooled sequences of all "
                  "seeds."),
        )

    config = {"task": task_spec, "model": model, "train": train.to_dict(), "control": control.to_dict(),
              "drift": drift.to_dict(), "seeds": seeds, "detach": detach}
    return run_measure("consequences", config, specs=teacher_forced, summarize=summarize, out_dir=out_dir,
                       resume=resume, overwrite=overwrite, workers=workers, progress=progress,
                       desc="consequences: teacher-forced runs")


def _excludes_zero(stat: dict) -> bool | None:
    """Whether the 95% interval lies entirely on one side of 0 (None without an interval)."""
    if stat.get("ci95") is None:
        return None
    lo, hi = stat["ci95"]
    return lo > 0 or hi < 0
