"""Errors of fast paths and models against their float64 reference, shared by the precision
tests of the attention paths (test_attention_precision.py, test_attention_triton.py)."""

from __future__ import annotations

import copy

import torch

from myopia.model import GPT, GPTConfig
from myopia.policy import GradientPolicy


def relative_error(x: torch.Tensor, ref: torch.Tensor) -> float:
    """max|x - ref| / max|ref|; the absolute error where ref is exactly zero (e.g. attention
    over a single key: a constant softmax, so dq = dk = 0)."""
    scale = ref.abs().max().item()
    return (x.double() - ref).abs().max().item() / (scale if scale > 0 else 1.0)


def small_gpt(T: int) -> tuple[GPT, torch.Tensor]:
    """A 2-layer built-in GPT (4 heads of size 32, seeded) and a batch x (4, T) of its tokens."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=T, vocab_size=64, n_layer=2, n_head=4, n_embd=128))
    return model, torch.randint(0, 64, (4, T), generator=torch.Generator().manual_seed(1))


def model_errors(model, x: torch.Tensor, policy: GradientPolicy) -> tuple[float, float]:
    """Worst error (logits and every parameter gradient, next-token loss on x (B, T)) of
    ``model`` (the built-in GPT or an HFCausalLM, any device and dtype) under ``policy`` with
    impl "fast", and of the same model vanilla, each against a float64 copy on CPU (the same
    rounded weights) on the reference path."""
    ref = copy.deepcopy(model).to("cpu", torch.float64)
    device = next(model.parameters()).device

    def run(m, dev, policy, impl):
        m.zero_grad(set_to_none=True)
        logits = m(x.to(dev), policy=policy, impl=impl)
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1).to(dev)
        )
        loss.backward()
        return [logits.detach().double().cpu()] + [p.grad.double().cpu() for p in m.parameters() if p.grad is not None]

    def worst(a, b):
        assert len(a) == len(b)
        return max(relative_error(x, y) for x, y in zip(a, b))

    err_policy = worst(run(model, device, policy, "fast"), run(ref, "cpu", policy, "reference"))
    err_vanilla = worst(run(model, device, GradientPolicy(), "auto"), run(ref, "cpu", GradientPolicy(), "reference"))
    return err_policy, err_vanilla
