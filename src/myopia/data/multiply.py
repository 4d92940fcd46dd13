"""Reversed-digit multiplication with filler positions before the answer (the paper's §5 test).

A sequence is ``a * b = c`` with every number written least significant digit first,
operands zero-padded to ``digits_a`` / ``digits_b`` digits and the product to
``digits_a + digits_b`` digits, and ``fillers`` extra positions that carry no information:

* ``filler_at="answer"``: ``fillers`` filler tokens ``.`` between ``=`` and the answer,
  e.g. 2×2 digits, 3 fillers: ``4 3 * 1 2 = . . . 4 4 6 0`` (34 × 21 = 714);
* ``filler_at="operands"`` (the paper's form): each operand gets ``fillers / 2`` more zero
  digits, e.g. ``4 3 0 0 * 1 2 0 0 = 4 4 6 0``.

Operands are uniform in [0, 10^digits). Only the answer is scored: the targets of prompt
and filler positions are ``IGNORE`` (per-position loss 0, and :meth:`loss_mask` leaves them
out of every mean), so a filler position is trained only through what later answer
positions read from it. A myopic model gets no gradient for the computation at a filler
position at all; a vanilla model can use fillers as scratch space. More fillers helping
vanilla and hurting myopic training is direct evidence of pre-caching (the paper, at GPU
scale with 5×5 digits: 0 vs 10 filler digits, vanilla 0.36 → 0.99, myopic 0.38 → 0.06).
The preset ``multiply-paper`` is that setting (5×5 digits, operands zero-padded to 10
digits; a GPU budget); ``multiply`` is the CPU scale, 2×2 digits
(``scripts/multiply_fillers.sh`` sweeps its fillers).

:meth:`accuracy` is exact match of the whole answer from the argmax at every answer
position, teacher-forced. It equals greedy decoding's exact match: a greedy decode stays on
the true prefix until its first wrong digit, so it is entirely right iff every
teacher-forced argmax is.

The trivial predictor knows the layout but not the operands: at each answer position the
marginal distribution of that digit of the product (exact, by enumeration, for up to 10^6
operand pairs; otherwise estimated from 2^20 pairs drawn with the task seed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from myopia.data.synthetic import split_generator

DIGITS = "0123456789"
TIMES, EQUALS, FILLER = 10, 11, 12  # token ids after the ten digits
IGNORE = -100  # target of a position that is not scored (F.cross_entropy's default ignore_index)
FILLER_AT = ("answer", "operands")
EXACT_MARGINAL_PAIRS = 10**6


@dataclass
class MultiplyTask:
    """Reversed-digit multiplication a × b with filler positions (see the module docstring)."""

    name: str = "multiply"
    digits_a: int = 2  # digits of the first operand (uniform in [0, 10^digits_a))
    digits_b: int = 2  # digits of the second operand
    fillers: int = 0  # filler positions before the answer (see --filler-at)
    filler_at: str = "answer"  # where fillers go: answer ('.' tokens after '='), operands (zero padding, the paper's form)
    seed: int = 0

    regression = False
    vocab_size = 13  # 0-9, '*', '=', '.'

    def __post_init__(self) -> None:
        for f in ("digits_a", "digits_b"):
            if getattr(self, f) < 1:
                raise ValueError(f"task {self.name}: {f} must be >= 1, got {getattr(self, f)}")
        if self.fillers < 0:
            raise ValueError(f"task {self.name}: fillers must be >= 0, got {self.fillers}")
        if self.filler_at not in FILLER_AT:
            raise ValueError(f"task {self.name}: filler_at must be one of {', '.join(FILLER_AT)}, got {self.filler_at!r}")
        if self.filler_at == "operands" and self.fillers % 2:
            raise ValueError(
                f"task {self.name}: filler_at=operands pads both operands equally; fillers must be even, got {self.fillers}"
            )
        self._marginal_nll = None

    def to_dict(self) -> dict:
        return asdict(self)

    # ------------------------------------------------------------------ layout
    @property
    def answer_digits(self) -> int:
        return self.digits_a + self.digits_b

    @property
    def _pad(self) -> int:
        """Extra zero digits per operand (filler_at=operands)."""
        return self.fillers // 2 if self.filler_at == "operands" else 0

    @property
    def seq_len(self) -> int:
        """Input positions: the whole sequence but its last token."""
        n_tokens = self.digits_a + self.digits_b + 2 * self._pad + 2 + self.answer_digits
        return n_tokens + (self.fillers if self.filler_at == "answer" else 0) - 1

    def answer_positions(self) -> list[int]:
        """Input positions t whose target y_t is an answer digit (the last ``answer_digits``)."""
        return list(range(self.seq_len - self.answer_digits, self.seq_len))

    def named_positions(self) -> dict[str, list[int]]:
        return {"answer": self.answer_positions()}

    # ------------------------------------------------------------------ data
    def operands(self, split: str, index: int, batch_size: int, stream: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """The operands (B,), (B,) of batch ``index`` (int64)."""
        g = split_generator(self.seed, split, index, stream)
        a = torch.randint(0, 10**self.digits_a, (batch_size,), generator=g)
        b = torch.randint(0, 10**self.digits_b, (batch_size,), generator=g)
        return a, b

    def encode(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Whole sequences (B, seq_len + 1) for operands a, b (B,)."""
        B = a.shape[0]
        pad = self._pad
        parts = [
            reversed_digits(a, self.digits_a + pad),
            torch.full((B, 1), TIMES),
            reversed_digits(b, self.digits_b + pad),
            torch.full((B, 1), EQUALS),
        ]
        if self.filler_at == "answer":
            parts.append(torch.full((B, self.fillers), FILLER))
        parts.append(reversed_digits(a * b, self.answer_digits))
        return torch.cat(parts, dim=1)

    def batch(self, split: str, index: int, batch_size: int, stream: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids x (B, T) and targets y (B, T), IGNORE except at answer positions."""
        seq = self.encode(*self.operands(split, index, batch_size, stream))
        x, y = seq[:, :-1], seq[:, 1:].clone()
        y[:, : self.seq_len - self.answer_digits] = IGNORE
        return x, y

    def loss_mask(self, y: torch.Tensor) -> torch.Tensor:
        """(B, T) bool: the positions whose loss counts (the answer digits)."""
        return y != IGNORE

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-position cross-entropy (B, T); 0 where the target is IGNORE."""
        B, T = y.shape
        return F.cross_entropy(out.reshape(B * T, -1).float(), y.reshape(-1), reduction="none",
                               ignore_index=IGNORE).view(B, T)

    def accuracy(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B,) bool: every answer digit is the argmax (teacher-forced = greedy exact match)."""
        mask = self.loss_mask(y)
        return ((out.argmax(-1) == y) | ~mask).all(-1)

    def trivial_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B, T): -log of each answer digit's marginal probability; 0 at prompt positions."""
        nll = self._marginals()  # (answer_digits, 10)
        out = torch.zeros(y.shape)
        ans = y[:, -self.answer_digits:]  # (B, D)
        out[:, -self.answer_digits:] = nll.gather(1, ans.T).T
        return out

    def decode(self, ids) -> str:
        return "".join(DIGITS[i] if i < 10 else "*=."[i - 10] for i in (int(t) for t in ids))

    # ------------------------------------------------------------------ internals
    def _marginals(self) -> torch.Tensor:
        """(answer_digits, 10) -log P(digit) of each reversed product digit (add-one smoothed)."""
        if self._marginal_nll is None:
            if 10 ** self.answer_digits <= EXACT_MARGINAL_PAIRS:
                a = torch.arange(10**self.digits_a).repeat_interleave(10**self.digits_b)
                b = torch.arange(10**self.digits_b).repeat(10**self.digits_a)
            else:
                g = torch.Generator().manual_seed(self.seed)
                a = torch.randint(0, 10**self.digits_a, (1 << 20,), generator=g)
                b = torch.randint(0, 10**self.digits_b, (1 << 20,), generator=g)
            d = reversed_digits(a * b, self.answer_digits)  # (N, D)
            counts = F.one_hot(d, 10).sum(0).double() + 1.0  # (D, 10)
            self._marginal_nll = (-(counts / counts.sum(-1, keepdim=True)).log()).float()
        return self._marginal_nll


def reversed_digits(n: torch.Tensor, width: int) -> torch.Tensor:
    """(B,) non-negative ints -> (B, width) their decimal digits, least significant first."""
    powers = 10 ** torch.arange(width, dtype=torch.int64)
    return (n.unsqueeze(1) // powers) % 10


PRESETS = {
    # CPU scale (2×2 digits: 10^4 problems).
    "multiply": dict(name="multiply", digits_a=2, digits_b=2, fillers=0, filler_at="answer"),
    # The paper's setting: 5×5 digits, operands zero-padded to 10 digits (needs a GPU budget).
    "multiply-paper": dict(name="multiply-paper", digits_a=5, digits_b=5, fillers=10, filler_at="operands"),
}

