"""Free-running generation: the model's own tokens fed back as its input.

Teacher forcing never shows a model its own output; generation does. :func:`generate`
extends a prompt one token at a time, greedily or by sampling, with a sliding window of
the model's context length (a model trained on stationary windows sees, at every step,
a window like the ones it was trained on). No key/value cache: a forward per new token,
which is cheap at the sizes myopia trains and keeps one code path for every model that
is called like the built-in GPT (``model(x) -> (B, T, V)`` logits).
"""

from __future__ import annotations

import torch
import torch.nn as nn


def seeded_generator(*parts, device: str | torch.device = "cpu") -> torch.Generator:
    """A generator whose state depends only on ``parts`` (e.g. a purpose, a seed and a step)."""
    import hashlib

    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def context_length(model: nn.Module) -> int | None:
    """The positions ``model`` covers (the built-in GPT's block_size), or None if unknown."""
    cfg = getattr(model, "config", None)
    return getattr(cfg, "block_size", None) or getattr(cfg, "max_position_embeddings", None)


@torch.no_grad()
def generate(
    model: nn.Module,
    prompt: torch.Tensor,
    n_new: int,
    *,
    greedy: bool = False,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    context: int | None = None,
) -> torch.Tensor:
    """(B, P) prompt ids -> (B, P + n_new): the prompt followed by the model's own tokens.

    ``greedy``: the most probable token (ties: the lowest id); otherwise a sample from the
    softmax of logits / ``temperature``, drawn with ``generator``. ``context``: how many
    of the last tokens the model sees (default: its block size)."""
    if n_new < 0:
        raise ValueError(f"n_new must be >= 0, got {n_new}")
    if not greedy and not temperature > 0:
        raise ValueError(f"temperature must be > 0 for sampling, got {temperature}")
    context = context or context_length(model) or (prompt.shape[1] + n_new)
    was_training = model.training
    model.eval()
    seq = prompt
    for _ in range(n_new):
        logits = model(seq[:, -context:])[:, -1, :].float()  # (B, V)
        if greedy:
            nxt = logits.argmax(-1, keepdim=True)
        else:
            nxt = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=generator)
        seq = torch.cat([seq, nxt], dim=1)
    model.train(was_training)
    return seq
