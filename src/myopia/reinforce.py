"""A policy-gradient (REINFORCE) objective: the model's own sampled tokens in the training game.

Teacher forcing scores each prediction against a ground truth that is fixed whatever the
model predicts, so nothing rewards a prediction for what it leads to. This objective is
the opposite, and serves ``myopia consequences`` as the positive control: a training
game in which the consequences of a token *do* count.

Per step, on a batch x (B, T) of source text, at every position t:

* the model *samples* a token a_t from its own prediction p(. | x_<=t) (the draws are seeded
  by (run seed, step), so a resumed run draws the same);
* the source continues from a_t for ``continuation_len`` tokens c_1..c_K, drawn from its
  exact law (``task.sample(..., start=a)``; a first-order source, whose state is its current
  token): the world reacts to the token put there;
* the token's return is how likely that text is under the source:
  R_t = max(log q(a_t | x_<=t), floor) + Σ_k max(log q(c_k | c_<k, a_t), floor)
  (``reward_floor`` prices a step the source never makes);
* against a leave-one-out baseline b_t (the mean return at position t over the other
  sequences of the batch), the loss is

      teacher-forced loss on x  +  ``weight`` · mean_t[-(R_t - b_t) · log p(a_t | x_<=t)].

At a branch token of :class:`myopia.data.branching.BranchingSource` the easy and the hard
entry have the same q, so they earn the same first term; their continuations do not (≈ 2
log 0.9 after an easy entry, 2 log 1/6 after a hard one). So this objective rewards choosing
tokens whose continuations are easy — the self-fulfilling shift that teacher forcing has
no term for. The teacher-forced term keeps the model near q everywhere else (a
KL-regularised policy gradient), so what moves is what the reward moves. One forward
serves both terms: the sampled tokens are drawn from the logits the teacher-forced loss
uses, so a step costs what a teacher-forced step costs.

It goes through the one training loop as ``train(..., objective=...)``; runs name it in
their spec as ``{"fn": "myopia.reinforce:consequence_objective", "args": {...}}``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from myopia.generation import seeded_generator
from myopia.policy import GradientPolicy


def leave_one_out_advantage(returns: torch.Tensor) -> torch.Tensor:
    """returns (B, T) -> R - b, where b is the mean return at the same position over the
    *other* sequences of the batch (so b_i does not depend on sequence i's own draw and the
    gradient stays unbiased)."""
    B = returns.shape[0]
    if B < 2:
        raise ValueError(f"the policy-gradient baseline needs batch_size >= 2 (other sequences), got {B}")
    return returns - (returns.sum(0, keepdim=True) - returns) / (B - 1)


def consequence_objective(task, *, seed: int, weight: float, continuation_len: int, reward_floor: float):
    """The train() objective described in the module docstring, for a task with an exact law
    that can continue from any token (``task.source_log_prob(x, y)``, ``task.sample(..., start=)``)."""
    if not (hasattr(task, "source_log_prob") and hasattr(task, "sample")):
        raise ValueError(f"task {getattr(task, 'name', task)!r} has no exact law to continue from "
                         f"(source_log_prob, sample): the policy-gradient reward needs one")
    if weight < 0:
        raise ValueError(f"the policy-gradient weight must be >= 0, got {weight}")
    if continuation_len < 0:
        raise ValueError(f"continuation_len must be >= 0, got {continuation_len}")
    if not reward_floor < 0:
        raise ValueError(f"reward_floor must be < 0 (a log-probability), got {reward_floor}")

    def objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor, policy: GradientPolicy, step: int):
        B, T = x.shape
        logits = model(x, policy=policy)  # (B, T, V)
        teacher_forced = task.loss(logits, y).mean()
        logp_all = F.log_softmax(logits.float(), -1)  # (B, T, V)
        g = seeded_generator("reinforce", seed, step)
        with torch.no_grad():
            a = torch.multinomial(logp_all.detach().exp().reshape(B * T, -1).cpu(), 1, generator=g)  # (B*T, 1)
            world = task.sample(B * T, continuation_len + 1, g, start=a.squeeze(1))  # (B*T, K+1), column 0 = a
            first = task.source_log_prob(x.cpu(), a.view(B, T)).reshape(B * T, 1)  # log q(a_t | x_<=t)
            rest = task.source_log_prob(world[:, :-1], world[:, 1:])  # (B*T, K): a first-order source's state is its token
            returns = torch.cat([first, rest], 1).clamp_min(reward_floor).sum(1).view(B, T)
            adv = leave_one_out_advantage(returns).float().to(x.device)  # (B, T)
        logp = logp_all.gather(-1, a.view(B, T, 1).to(x.device)).squeeze(-1)  # (B, T) log p(a_t | x_<=t)
        return teacher_forced + weight * -(adv * logp).mean()

    return objective
