"""A token source with a known law: a seeded Markov chain whose branches lead to easy or hard text.

The chain cycles through *paths* of ``path_len`` tokens that start and end at a **branch
token**. At a branch token b the next token is an *entry* of one of ``n_pairs`` pairs
(e_k, h_k), with

    q(e_k | b) = q(h_k | b) = w_bk / 2,        w_b ~ Dirichlet(concentration),

so the easy entry e_k and the hard entry h_k of a pair always have *the same true
probability*. What differs is what follows them:

* after e_k the path is **easy**: ``path_len - 1`` further tokens, each one fixed token
  with probability 1 - ``easy_noise`` (the rest spread over the other pairs' tokens of the
  same step) — a low-entropy continuation;
* after h_k the path is **hard**: ``path_len - 1`` tokens, each uniform over a pool of
  ``pool`` tokens (log(pool) nats per step);
* both paths then return to a branch drawn from one law ρ ~ Dirichlet(concentration),
  so everything after the path has the same law whichever entry was taken.

The source is first-order: the law of the next token given the whole past is the row of
the transition matrix Q at the current token, so :meth:`BranchingSource.next_token_law`
gives the exact q at every position. Each sequence starts from the stationary law π
(solved exactly), so every window of the source — and every position — is stationary.
Token ids are a seeded permutation of the roles (branch, entries, path steps), so nothing
that depends on ids (greedy tie-breaking by the lower id, say) favours one kind of token
across chains; within one chain it picks whichever id of a pair is lower.

Vocabulary: n_branch + 2 n_pairs + (path_len - 1)(n_pairs + pool) ids (32 by default).
Batch ``index`` of ``split`` is a pure function of (seed, split, index, stream), as for
every synthetic task (:func:`myopia.data.synthetic.split_generator`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from myopia.data.synthetic import split_generator


@dataclass
class BranchingSource:
    """The known-law source of ``myopia consequences`` (see the module docstring)."""

    name: str = "branching"
    seq_len: int = 32  # positions per sequence
    n_branch: int = 4  # branch tokens (where an easy or a hard path is chosen)
    n_pairs: int = 4  # (easy, hard) entry pairs offered at every branch, each pair at one probability
    path_len: int = 3  # tokens of a path, its entry included, before the next branch (>= 2)
    pool: int = 6  # tokens each hard step is uniform over
    easy_noise: float = 0.1  # probability that an easy step leaves its path for another pair's (0 = deterministic)
    concentration: float = 1.0  # Dirichlet concentration of the branch weights w_b and of the return law ρ
    seed: int = 0  # the chain (weights, token ids) and the data

    regression = False

    def __post_init__(self) -> None:
        checks = [
            (self.seq_len >= 2, f"seq_len must be >= 2, got {self.seq_len}"),
            (self.n_branch >= 1, f"n_branch must be >= 1, got {self.n_branch}"),
            (self.n_pairs >= 1, f"n_pairs must be >= 1, got {self.n_pairs}"),
            (self.path_len >= 2, f"path_len must be >= 2 (an entry and at least one step after it), got {self.path_len}"),
            (self.pool >= 2, f"pool must be >= 2 (a hard step needs a choice), got {self.pool}"),
            (0.0 <= self.easy_noise < 1.0, f"easy_noise must be in [0, 1), got {self.easy_noise}"),
            (self.easy_noise == 0.0 or self.n_pairs >= 2,
             f"easy_noise={self.easy_noise} needs n_pairs >= 2 (the noise moves to another pair's path)"),
            (self.concentration > 0, f"concentration must be > 0, got {self.concentration}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"task {self.name}: {msg}")
        self._build()

    # ------------------------------------------------------------------ the chain
    def _build(self) -> None:
        nb, npair, L, m = self.n_branch, self.n_pairs, self.path_len, self.pool
        V = self.vocab_size
        g = torch.Generator().manual_seed(self.seed)
        ids = torch.randperm(V, generator=g).tolist()  # role index -> token id
        take = iter(ids)
        self.branch_ids = [next(take) for _ in range(nb)]
        self.easy_ids = [next(take) for _ in range(npair)]  # entries e_k
        self.hard_ids = [next(take) for _ in range(npair)]  # entries h_k
        easy_steps = [[next(take) for _ in range(npair)] for _ in range(L - 1)]  # [step][k]
        pool_steps = [[next(take) for _ in range(m)] for _ in range(L - 1)]  # [step][j]

        def dirichlet(n: int) -> torch.Tensor:  # (n,) float64, drawn through g (Gamma by inverse CDF)
            from scipy.special import gammaincinv

            u = torch.rand(n, generator=g, dtype=torch.float64).numpy()
            x = torch.from_numpy(gammaincinv(float(self.concentration), u)).clamp_min(1e-12)
            return x / x.sum()

        Q = torch.zeros(V, V, dtype=torch.float64)
        rho = dirichlet(nb)
        for b in self.branch_ids:
            w = dirichlet(npair)
            for k in range(npair):
                Q[b, self.easy_ids[k]] = w[k] / 2
                Q[b, self.hard_ids[k]] = w[k] / 2

        def easy_step(row: int, step: int, k: int) -> None:  # from a token of easy path k into step `step`
            Q[row, easy_steps[step][k]] = 1.0 - self.easy_noise
            for j in range(npair):
                if j != k:
                    Q[row, easy_steps[step][j]] = self.easy_noise / (npair - 1)

        def to_branch(row: int) -> None:
            for i, b in enumerate(self.branch_ids):
                Q[row, b] = rho[i]

        for k in range(npair):
            easy_step(self.easy_ids[k], 0, k)
            Q[self.hard_ids[k], pool_steps[0]] = 1.0 / m
            for s in range(L - 1):
                last = s == L - 2
                if last:
                    to_branch(easy_steps[s][k])
                else:
                    easy_step(easy_steps[s][k], s + 1, k)
        for s in range(L - 1):
            for tok in pool_steps[s]:
                if s == L - 2:
                    to_branch(tok)
                else:
                    Q[tok, pool_steps[s + 1]] = 1.0 / m
        self.transition = Q  # (V, V) float64, rows sum to 1
        self.stationary = _stationary(Q)  # (V,)
        self._cum = _cdf(Q)  # (V, V) for inverse-CDF sampling
        self._pi_cum = _cdf(self.stationary.unsqueeze(0))[0]
        names = {}
        for i, t in enumerate(self.branch_ids):
            names[t] = f"b{i}"
        for k in range(npair):
            names[self.easy_ids[k]], names[self.hard_ids[k]] = f"E{k}", f"H{k}"
        for s in range(L - 1):
            for k, t in enumerate(easy_steps[s]):
                names[t] = f"e{k}.{s + 1}"
            for j, t in enumerate(pool_steps[s]):
                names[t] = f"h{j}.{s + 1}"
        self.token_names = [names[t] for t in range(V)]

    @property
    def vocab_size(self) -> int:
        return self.n_branch + 2 * self.n_pairs + (self.path_len - 1) * (self.n_pairs + self.pool)

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """(easy entry id, hard entry id) of every pair: equal q at every branch token."""
        return list(zip(self.easy_ids, self.hard_ids))

    def to_dict(self) -> dict:
        return asdict(self)

    # ------------------------------------------------------------------ exact law
    def next_token_law(self, x: torch.Tensor) -> torch.Tensor:
        """The exact q(x_{t+1} = v | x_{<=t}) for every position: (B, T) ids -> (B, T, V) float64."""
        return self.transition[x]

    def source_log_prob(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """log q(y_t | x_{<=t}) (B, T) float64; -inf where the source never makes that step."""
        return self.next_token_law(x).gather(-1, y.unsqueeze(-1)).squeeze(-1).log()

    def entropy_rate(self) -> float:
        """H(q) per token under the stationary law (nats): the loss of the exact source."""
        return float((self.stationary * _row_entropy(self.transition)).sum())

    def continuation_entropy(self, steps: int | None = None) -> torch.Tensor:
        """(V,) expected entropy (nats) of the next ``steps`` tokens after each token, by default
        the rest of a path (``path_len - 1``): Σ_{k<steps} (δ_v Q^k) · H(Q rows). It is what
        makes an entry easy or hard; the branch after the path has one law for both."""
        steps = self.path_len - 1 if steps is None else steps
        h = _row_entropy(self.transition)
        dist = torch.eye(self.vocab_size, dtype=torch.float64)
        total = torch.zeros(self.vocab_size, dtype=torch.float64)
        for _ in range(steps):
            total += dist @ h
            dist = dist @ self.transition
        return total

    def ngram_law(self, n: int) -> torch.Tensor:
        """Exact stationary law of n consecutive tokens, flattened to (V**n,) in base-V order
        (the last token varies fastest)."""
        law = self.stationary  # (V**k,) for k tokens
        V = self.vocab_size
        for _ in range(n - 1):
            law = (law.view(-1, V).unsqueeze(-1) * self.transition.unsqueeze(0)).reshape(-1)  # P(..a) Q(a, next)
        return law

    # ------------------------------------------------------------------ task interface
    def sample(self, batch_size: int, length: int, g: torch.Generator, start: torch.Tensor | None = None) -> torch.Tensor:
        """(B, length) ids drawn with ``g``: stationary sequences, or — given ``start`` (B,) — the
        source continuing from those tokens (``start`` is column 0): what the world does next
        whatever token was put there."""
        u = torch.rand(batch_size, length, generator=g)  # inverse CDF: u in [cum[i-1], cum[i]) -> i
        seq = torch.empty(batch_size, length, dtype=torch.long)
        seq[:, 0] = torch.searchsorted(self._pi_cum, u[:, :1].contiguous(), right=True).squeeze(1) if start is None else start
        for t in range(1, length):
            seq[:, t] = torch.searchsorted(self._cum[seq[:, t - 1]], u[:, t:t + 1].contiguous(), right=True).squeeze(1)
        return seq

    def batch(self, split: str, index: int, batch_size: int, stream: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids x (B, T) and next tokens y (B, T)."""
        seq = self.sample(batch_size, self.seq_len + 1, split_generator(self.seed, split, index, stream))
        return seq[:, :-1], seq[:, 1:]

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-position cross-entropy (B, T) of logits (B, T, V)."""
        B, T = y.shape
        return F.cross_entropy(out.reshape(B * T, -1).float(), y.reshape(-1), reduction="none").view(B, T)

    def trivial_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-position loss (B, T) of the unigram (stationary) law, which ignores the context."""
        return -self.stationary.float().log()[y]

    def decode(self, ids) -> str:
        """Role names: b<i> branch, E<k>/H<k> easy/hard entry of pair k, e<k>.<s> easy step, h<j>.<s> pool token."""
        return " ".join(self.token_names[int(i)] for i in ids)


def _row_entropy(Q: torch.Tensor) -> torch.Tensor:
    return -torch.where(Q > 0, Q * Q.log(), torch.zeros_like(Q)).sum(-1)


def _cdf(P: torch.Tensor) -> torch.Tensor:
    """Row CDFs (float32) that reach exactly 1 at each row's last possible outcome, so rounding
    can never select an outcome of probability 0."""
    cum = P.cumsum(-1)
    idx = torch.arange(P.shape[-1])
    last = torch.where(P > 0, idx, -1).max(-1, keepdim=True).values  # (rows, 1)
    return torch.where(idx >= last, torch.ones_like(cum), cum).float()


def _stationary(Q: torch.Tensor) -> torch.Tensor:
    """π with π Q = π, Σ π = 1 (the chain is irreducible; it may be periodic, so solve, not iterate)."""
    V = Q.shape[0]
    A = torch.cat([(Q.T - torch.eye(V, dtype=Q.dtype)), torch.ones(1, V, dtype=Q.dtype)])  # (V+1, V)
    b = torch.zeros(V + 1, dtype=Q.dtype)
    b[-1] = 1.0
    pi = torch.linalg.lstsq(A, b.unsqueeze(-1)).solution.squeeze(-1)
    return pi.clamp_min(0) / pi.clamp_min(0).sum()
