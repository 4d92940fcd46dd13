"""Policy-aware attention inside any supported Hugging Face causal LM.

This is the one place that touches transformers' attention, so that loading, the adapter
and the tiny models never need to know how a policy gets into a model. Design decisions:

* We plug in through transformers' public extension points only: the attention function
  is registered as ``"myopia"`` with ``AttentionInterface`` and the model's
  ``attn_implementation`` is set to it. The same name is registered with
  ``AttentionMaskInterface`` (with transformers' boolean sdpa mask); without that entry
  transformers builds no mask at all for an unknown implementation, and the function
  would silently attend to padding and outside Mistral's sliding window.
* The attention function receives HF's ``q, k, v`` (B, nh|nkv, T, hs) after the rotary
  embedding, repeats grouped key/value heads, turns the mask into a boolean mask and calls
  :func:`myopia.attention.policy_attention`, so HF models get exactly the reference and
  fused paths that the built-in GPT uses.
* The policy (and a frozen past, and a recorder) reach the attention function through a
  context variable set by :class:`~myopia.hf.HFCausalLM`; without one, the policy given
  to ``load``/``convert`` applies, so a plain ``model(input_ids)`` works.
* Where the off-band keys/values come from is decided by
  :func:`myopia.attention.constant_past`, exactly as in the built-in GPT. It runs in a
  forward pre-hook on every attention module, because ``detach="hidden"`` needs keys/values
  recomputed with the *live* projections from the *detached* attention input, which the
  attention function cannot see: its ``project`` runs the module once on that input (or,
  for a frozen past, on the reference model's attention input) in "capture" mode — the
  attention function only records the post-rotary k, v and returns zeros. The result
  reaches the real call as ``k_off, v_off``. This works for every family without touching
  its code.
* Forward values never depend on the policy. Attention-probability dropout is not applied
  under ``"myopia"`` attention (embedding and residual dropout are); incremental decoding
  with a KV cache (``generate``) falls back to transformers' sdpa attention, where no
  gradient is involved.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

import torch
import torch.nn as nn

from myopia.attention import ConstantPast, constant_past, policy_attention
from myopia.model import PastState
from myopia.policy import GradientPolicy

ATTN_NAME = "myopia"

# model_type -> family name
SUPPORTED_FAMILIES = {
    "gpt2": "GPT-2",
    "gpt_neox": "GPT-NeoX (Pythia)",
    "llama": "Llama",
    "qwen2": "Qwen2",
    "mistral": "Mistral",
}


class UnsupportedModelError(ValueError):
    """A model whose family (or module layout) myopia's attention does not know."""


def supported_families_text() -> str:
    return ", ".join(f"{name} (model_type {mt!r})" for mt, name in SUPPORTED_FAMILIES.items())


# ---------------------------------------------------------------------- policy context
@dataclass
class PolicyContext:
    """What one forward pass of a converted model runs under."""

    policy: GradientPolicy
    impl: str = "auto"
    past: list[PastState] | None = None  # per layer, from a frozen reference model
    record: list[PastState] | None = None  # filled with this model's per-layer attn input, k, v


CONTEXT: ContextVar[PolicyContext | None] = ContextVar("myopia_hf_policy", default=None)


def _context(module: nn.Module) -> PolicyContext:
    ctx = CONTEXT.get()
    if ctx is None:
        return PolicyContext(getattr(module, "_myopia_policy", None) or GradientPolicy())
    return ctx


# ---------------------------------------------------------------------- attention function
def _repeat_kv(t: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, nkv, T, hs) -> (B, nkv * n_rep, T, hs), head h reads kv head h // n_rep."""
    if n_rep == 1:
        return t
    B, nkv, T, hs = t.shape
    return t[:, :, None].expand(B, nkv, n_rep, T, hs).reshape(B, nkv * n_rep, T, hs)


def _bool_mask(mask: torch.Tensor | None, T: int) -> torch.Tensor | None:
    """HF's mask (None = plain causal, bool True = may attend, or additive float) -> bool (B|1, 1, T, T)."""
    if mask is None:
        return None
    if mask.dim() != 4:
        raise ValueError(f"myopia attention expects a 4-D attention mask, got shape {tuple(mask.shape)}")
    mask = mask[..., -T:]
    if mask.dtype != torch.bool:
        mask = mask > torch.finfo(mask.dtype).min / 2
    return mask  # rows that may read nothing (padding) are handled by policy_attention


def myopia_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """The function registered as ``"myopia"``: HF (B, nh, T, hs) tensors -> (B, T, nh, hs)."""
    capture = getattr(module, "_myopia_capture", None)
    if capture is not None:  # capture pass of detach="hidden": keys/values only
        capture.append((key, value))
        return query.new_zeros(query.shape[0], query.shape[2], query.shape[1], query.shape[3]), None
    B, nh, T, hs = query.shape
    if key.shape[2] != T:  # incremental decoding with a cache: no gradient semantics involved
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=0.0, scaling=scaling, is_causal=is_causal, **kwargs
        )
    ctx = _context(module)
    if ctx.record is not None:
        ctx.record.append(PastState(attn_in=module._myopia_attn_in, k=key.detach(), v=value.detach()))
    off = getattr(module, "_myopia_offsets", None) or ConstantPast(None, None, ctx.past is None)
    module._myopia_offsets = None
    n_rep = nh // key.shape[1]
    k, v = _repeat_kv(key, n_rep), _repeat_kv(value, n_rep)  # (B, nh, T, hs)
    k_off = None if off.k_off is None else _repeat_kv(off.k_off, n_rep)
    v_off = None if off.v_off is None else _repeat_kv(off.v_off, n_rep)
    y = policy_attention(
        query, k, v, ctx.policy, k_off=k_off, v_off=v_off, attn_mask=_bool_mask(attention_mask, T),
        scale=scaling, impl=ctx.impl, off_equals_live=off.off_equals_live,
    )
    return y.transpose(1, 2).contiguous(), None  # (B, T, nh, hs)


def register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTN_NAME, myopia_attention_forward)
    AttentionMaskInterface.register(ATTN_NAME, sdpa_mask)


# ---------------------------------------------------------------------- per-layer hook
def _hidden_arg(args: tuple, kwargs: dict) -> torch.Tensor:
    return kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]


def _with_hidden(args: tuple, kwargs: dict, h: torch.Tensor) -> tuple[tuple, dict]:
    if "hidden_states" in kwargs:
        return args, {**kwargs, "hidden_states": h}
    return (h, *args[1:]), kwargs


def _before_attention(module: nn.Module, args: tuple, kwargs: dict):
    """Forward pre-hook: sets up the off-band keys/values the attention function will use."""
    module._myopia_offsets = None
    ctx = _context(module)
    h = _hidden_arg(args, kwargs)  # (B, T, C) attention input
    past = None
    if ctx.past is not None:
        if len(ctx.past) != module._myopia_n_layers:
            raise ValueError(f"past has {len(ctx.past)} layers, the model has {module._myopia_n_layers}")
        past = ctx.past[module._myopia_layer]
    if ctx.record is not None:
        module._myopia_attn_in = h.detach()

    def project(src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Post-rotary (k, v) of attention input ``src``: the module run in capture mode."""
        a, kw = _with_hidden(args, kwargs, src)
        module._myopia_capture = []
        try:
            module.forward(*a, **kw)  # hooks bypassed: this is the capture pass only
            return module._myopia_capture[0]
        finally:
            module._myopia_capture = None

    module._myopia_offsets = constant_past(ctx.policy, h, past, project)
    return None


# ---------------------------------------------------------------------- conversion
def attention_modules(model: nn.Module) -> list[nn.Module]:
    """The self-attention module of every layer, in layer order."""
    mods = [m for m in model.modules() if type(m).__name__.endswith("Attention") and hasattr(m, "layer_idx")]
    return sorted(mods, key=lambda m: m.layer_idx)


def check_supported(config) -> str:
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_FAMILIES:
        raise UnsupportedModelError(
            f"model type {model_type!r} is not supported by myopia's attention; supported families: "
            f"{supported_families_text()}"
        )
    return model_type


def convert(model: nn.Module, policy: GradientPolicy | None = None) -> nn.Module:
    """Switch an already-loaded HF causal LM to policy-aware attention (in place; returns it).

    ``policy`` is the default for calls that do not set one (a plain ``model(input_ids)``;
    :class:`HFCausalLM` calls without ``policy=``).
    """
    check_supported(model.config)
    register()
    if model.config._attn_implementation != ATTN_NAME:
        model.set_attn_implementation(ATTN_NAME)
    mods = attention_modules(model)
    n_layers = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layer", None)
    if len(mods) != n_layers:
        raise UnsupportedModelError(
            f"found {len(mods)} attention modules in a {n_layers}-layer {type(model).__name__}; "
            f"this model's layout is not one myopia knows ({supported_families_text()})"
        )
    for i, m in enumerate(mods):
        m._myopia_policy = policy or GradientPolicy()
        m._myopia_layer = i
        m._myopia_n_layers = len(mods)
        if getattr(m, "_myopia_hook", None) is None:
            m._myopia_hook = m.register_forward_pre_hook(_before_attention, with_kwargs=True)
    model._myopia_policy = policy or GradientPolicy()
    return model
