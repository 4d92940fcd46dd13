"""A planning task: couplets whose second line must rhyme, over a synthetic vocabulary.

Words come in kinds: ``body_words`` filler words that carry nothing, ``n_classes`` rhyme
classes of ``words_per_class`` rhyme words each, cue words, a line break ``NL`` and a
couplet separator ``SEP``. A sequence is ``SEP`` followed by ``couplets`` couplets, each
``2 * line_words + 2`` tokens::

    b b b e1 NL c b b e2 SEP        (line_words = 4)

* line 1: ``line_words - 1`` body words, then its ending e1, a uniform rhyme word;
* line 2 must rhyme: its ending e2 is drawn uniformly from e1's class, e2 != e1;
* the first word of line 2 is the cue c, fixed by the ending that was chosen, so the
  choice of e2 is made at the line break (where c is predicted) and e2 is due only
  ``line_words - 1`` positions later:

  - ``cue="word"``: c names e2 itself (one cue per rhyme word). Predicting c needs e1's
    class at the line break; the ending is then a function of c alone.
  - ``cue="index"``: c is e2's index within its class (one cue per index). Predicting c
    needs only e1's index; the ending needs the class of e1 *and* c, so the class is
    useful at the line break only for what comes later.

Everything else in line 2 is body words. Positions are fixed: for couplet k, with
``o = k * (2 * line_words + 2)`` and L = ``line_words``, the input at ``o + L + 1`` is the
line break (its target is the cue) and the target at ``o + 2L`` is the ending e2.

**The planned label.** At each line break the rhyme class of the coming ending is a
deterministic function of the sequence (the class of e1, which equals the class of e2):
:meth:`planning_targets` returns the line-break positions and that class, for probes.

**How to measure steering** (on top of a probe/patching module): at the line break of a
held-out couplet whose class is r, change the residual stream at layer l (e.g. add
``alpha * (mu_r' - mu_r)``, the difference of the class means of that state over
:meth:`planning_targets`, or patch in the state of a couplet of class r'), then let the model
write line 2 greedily from the line break (``line_words`` tokens, the steered state kept)
and read the class of the token written at the ending position with :meth:`word_class`.
The steering effect is the share of lines that end in the steered class r' (a proportion:
report it with a Wilson 95% interval, :func:`myopia.results.wilson95`), against the
same share without steering (near 0 for a model that rhymes) and against chance
(1 / n_classes); run it for vanilla and myopic models of the same seed.

The trivial predictor knows the layout but not the words (per position: body log F,
ending log(C W), cue log(#cues), line break and separator 0); :meth:`best_loss` is the
loss of the true conditional distribution (cue log(W - 1), ending 0).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from myopia.data.synthetic import split_generator

CUES = ("word", "index")


@dataclass
class PlanningTask:
    """Rhyming couplets over a synthetic vocabulary (see the module docstring)."""

    name: str = "planning"
    n_classes: int = 4  # rhyme classes
    words_per_class: int = 4  # rhyme words per class
    body_words: int = 8  # words that fill a line and carry nothing
    line_words: int = 4  # words per line, the rhyming ending included
    couplets: int = 2  # couplets per sequence
    cue: str = "word"  # first word of line 2 names: word (the ending itself) or index (its index within the class)
    seed: int = 0

    regression = False

    def __post_init__(self) -> None:
        for f, least in (("n_classes", 2), ("words_per_class", 2), ("body_words", 1), ("line_words", 2),
                         ("couplets", 1)):
            if getattr(self, f) < least:
                raise ValueError(f"task {self.name}: {f} must be >= {least}, got {getattr(self, f)}")
        if self.cue not in CUES:
            raise ValueError(f"task {self.name}: cue must be one of {', '.join(CUES)}, got {self.cue!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    # ------------------------------------------------------------------ vocabulary
    @property
    def n_rhyme_words(self) -> int:
        return self.n_classes * self.words_per_class

    @property
    def n_cues(self) -> int:
        return self.n_rhyme_words if self.cue == "word" else self.words_per_class

    @property
    def first_rhyme_word(self) -> int:
        return self.body_words

    @property
    def first_cue(self) -> int:
        return self.body_words + self.n_rhyme_words

    @property
    def NL(self) -> int:
        return self.first_cue + self.n_cues

    @property
    def SEP(self) -> int:
        return self.NL + 1

    @property
    def vocab_size(self) -> int:
        return self.SEP + 1

    def word_class(self, ids: torch.Tensor) -> torch.Tensor:
        """Rhyme class of each token (same shape), -1 for tokens that are not rhyme words."""
        r = ids - self.first_rhyme_word
        is_rhyme = (r >= 0) & (r < self.n_rhyme_words)
        return torch.where(is_rhyme, torch.div(r, self.words_per_class, rounding_mode="floor"), -1)

    def cue_of(self, ending: torch.Tensor) -> torch.Tensor:
        """The cue token that announces rhyme word ``ending`` (same shape)."""
        r = ending - self.first_rhyme_word
        return self.first_cue + (r if self.cue == "word" else r % self.words_per_class)

    def cue_class(self, ids: torch.Tensor) -> torch.Tensor:
        """Rhyme class of the word each cue token names (same shape; cue="word" only), -1 for
        tokens that are not cues: the inverse of :meth:`cue_of` up to the class."""
        if self.cue != "word":
            raise ValueError(f"task {self.name}: a cue names a class only with cue='word', not {self.cue!r}")
        c = ids - self.first_cue
        is_cue = (c >= 0) & (c < self.n_cues)
        return torch.where(is_cue, self.word_class(c + self.first_rhyme_word), -1)

    # ------------------------------------------------------------------ layout
    @property
    def couplet_len(self) -> int:
        return 2 * self.line_words + 2

    @property
    def seq_len(self) -> int:
        return self.couplets * self.couplet_len

    def line_break_positions(self) -> list[int]:
        """Input positions holding NL (their target is the cue), one per couplet."""
        return [k * self.couplet_len + self.line_words + 1 for k in range(self.couplets)]

    def ending_positions(self) -> list[int]:
        """Input positions whose target is the line-2 ending, one per couplet."""
        return [k * self.couplet_len + 2 * self.line_words for k in range(self.couplets)]

    def named_positions(self) -> dict[str, list[int]]:
        return {"line break": self.line_break_positions(), "ending": self.ending_positions()}

    def planning_targets(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(positions (N, 2) of [batch row, t] at every line break, classes (N,) of the ending
        that line 2 will have), N = B * couplets, couplet-major within each row."""
        B = x.shape[0]
        nl = torch.tensor(self.line_break_positions())
        end = torch.tensor(self.ending_positions())
        rows = torch.arange(B).repeat_interleave(self.couplets)
        pos = torch.stack([rows, nl.repeat(B)], dim=1)
        classes = self.word_class(y[:, end]).reshape(-1)
        return pos, classes

    # ------------------------------------------------------------------ data
    def sequences(self, split: str, index: int, batch_size: int, stream: int = 0) -> torch.Tensor:
        """Whole sequences (B, seq_len + 1): SEP, then the couplets."""
        g = split_generator(self.seed, split, index, stream)
        B, C, L, W = batch_size, self.couplets, self.line_words, self.words_per_class
        body1 = torch.randint(0, self.body_words, (B, C, L - 1), generator=g)
        e1 = torch.randint(0, self.n_rhyme_words, (B, C), generator=g)
        # e2: another word of e1's class, uniform among the W - 1 others
        shift = torch.randint(1, W, (B, C), generator=g)
        e2 = (e1 // W) * W + (e1 % W + shift) % W
        body2 = torch.randint(0, self.body_words, (B, C, L - 2), generator=g)
        e1, e2 = e1 + self.first_rhyme_word, e2 + self.first_rhyme_word
        nl = torch.full((B, C, 1), self.NL)
        sep = torch.full((B, C, 1), self.SEP)
        couplets = torch.cat([body1, e1.unsqueeze(-1), nl, self.cue_of(e2).unsqueeze(-1), body2,
                              e2.unsqueeze(-1), sep], dim=-1)  # (B, C, 2L + 2)
        return torch.cat([torch.full((B, 1), self.SEP), couplets.reshape(B, -1)], dim=1)

    def batch(self, split: str, index: int, batch_size: int, stream: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids x (B, T) and next tokens y (B, T)."""
        seq = self.sequences(split, index, batch_size, stream)
        return seq[:, :-1], seq[:, 1:]

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-position cross-entropy (B, T) of logits (B, T, V)."""
        B, T = y.shape
        return F.cross_entropy(out.reshape(B * T, -1).float(), y.reshape(-1), reduction="none").view(B, T)

    def trivial_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B, T): the layout-aware marginal (module docstring)."""
        return self._per_position(cue=math.log(self.n_cues), ending=math.log(self.n_rhyme_words)).expand(y.shape)

    def best_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B, T): the loss of the true conditional distribution."""
        return self._per_position(cue=math.log(self.words_per_class - 1), ending=0.0).expand(y.shape)

    def decode(self, ids) -> str:
        def word(i: int) -> str:
            if i < self.body_words:
                return f"b{i}"
            if i < self.first_cue:
                r = i - self.first_rhyme_word
                return f"r{r // self.words_per_class}.{r % self.words_per_class}"
            if i < self.NL:
                return f"c{i - self.first_cue}"
            return "NL" if i == self.NL else "SEP"

        return " ".join(word(int(t)) for t in ids)

    def _per_position(self, *, cue: float, ending: float) -> torch.Tensor:
        """(T,) loss per position of one couplet layout, repeated: body log F, line-1 ending
        log(C W), cue and line-2 ending as given, line break and separator 0."""
        L = self.line_words
        body = math.log(self.body_words)
        one = [body] * (L - 1) + [math.log(self.n_rhyme_words), 0.0, cue] + [body] * (L - 2) + [ending, 0.0]
        return torch.tensor(one * self.couplets)


PRESETS = {
    # CPU scale: 4 classes of 4 rhyme words, 8 body words, 4-word lines, 2 couplets (T = 20).
    "planning": dict(name="planning", n_classes=4, words_per_class=4, body_words=8, line_words=4, couplets=2,
                     cue="word"),
    # The class is useful at the line break only for the ending (the cue gives the index).
    "planning-index": dict(name="planning-index", n_classes=4, words_per_class=4, body_words=8, line_words=4,
                           couplets=2, cue="index"),
}
