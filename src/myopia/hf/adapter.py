"""A Hugging Face causal LM behind the built-in GPT's interface.

Every measure, the training loop and the run specs are written against one model
interface — ``model(x, policy=..., past=...) -> logits`` plus ``past_states`` — so an HF
model that offers it needs no special case anywhere: it trains through
:func:`myopia.train.train`, runs in ``myopia gap`` and ``myopia bonus``, and serves the
offset decomposition. :func:`build_hf_model` is how a run spec ``{"kind": "hf", ...}``
becomes such a model.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from myopia.hf.attention import CONTEXT, PolicyContext, attention_modules, convert
from myopia.hf.loading import from_config, load_model, max_positions
from myopia.model import PastState
from myopia.policy import GradientPolicy


class HFCausalLM(nn.Module):
    """An HF causal LM called like the built-in GPT: ``model(x, policy=...) -> (B, T, V)``.

    ``past=`` (a list of per-layer :class:`~myopia.model.PastState` from a frozen model's
    ``past_states``) supplies every off-band key/value, exactly as in the built-in GPT.
    ``state_dict`` leaves out tied duplicates (GPT-2 and Pythia share the embedding with
    the head) so checkpoints are plain safetensors; ``load_state_dict`` restores them.
    """

    regression = False

    def __init__(self, hf_model: nn.Module, policy: GradientPolicy | None = None):
        super().__init__()
        self.hf = convert(hf_model, policy or getattr(hf_model, "_myopia_policy", None))
        self.config = hf_model.config

    @classmethod
    def from_pretrained(cls, path: str | Path, policy: GradientPolicy | None = None, **kwargs) -> "HFCausalLM":
        return cls(load_model(path, policy, **kwargs))

    @property
    def vocab_size(self) -> int:
        return self.hf.get_output_embeddings().weight.shape[0]

    @property
    def n_layer(self) -> int:
        return len(attention_modules(self.hf))

    def num_params(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.hf.get_input_embeddings().weight.numel()
        return n

    def forward(
        self,
        x: torch.Tensor,
        policy: GradientPolicy | None = None,
        *,
        past: list[PastState] | None = None,
        attention_mask: torch.Tensor | None = None,
        impl: str = "auto",
        return_hidden: bool = False,
        record: list | None = None,
    ):
        """x: (B, T) token ids -> (B, T, V) logits; ``attention_mask`` (B, T): 1 = token, 0 = padding.

        ``return_hidden`` also returns the residual stream: n_layer + 1 tensors (B, T, C)
        (embeddings, then after each layer; the last after the final norm).
        """
        policy = policy or self.hf._myopia_policy
        limit = max_positions(self.config)
        if limit is not None and x.shape[1] > limit:
            raise ValueError(f"sequence length {x.shape[1]} exceeds the model's {limit} positions; shorten the sequences")
        token = CONTEXT.set(PolicyContext(policy, impl, past, record))
        try:
            out = self.hf(input_ids=x, attention_mask=attention_mask, use_cache=False, output_hidden_states=return_hidden)
        finally:
            CONTEXT.reset(token)
        return (out.logits, list(out.hidden_states)) if return_hidden else out.logits

    @torch.no_grad()
    def past_states(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None) -> list[PastState]:
        """Per-layer attention inputs and post-rotary keys/values (B, nkv, T, hs), no gradient."""
        record: list[PastState] = []
        self.forward(x, attention_mask=attention_mask, record=record)
        return record

    # -- checkpoints without tied duplicates
    def _tied_names(self) -> dict[str, str]:
        seen: dict[int, str] = {}
        tied = {}
        for name, p in self.named_parameters(remove_duplicate=False):
            if id(p) in seen:
                tied[name] = seen[id(p)]
            else:
                seen[id(p)] = name
        return tied

    def state_dict(self, *args, **kwargs):
        sd = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", args[1] if len(args) > 1 else "")
        for name in self._tied_names():
            sd.pop(prefix + name, None)
        return sd

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        state_dict = dict(state_dict)
        for name, source in self._tied_names().items():
            if name not in state_dict and source in state_dict:
                state_dict[name] = state_dict[source]
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def build_hf_model(spec: dict, task, seed: int) -> HFCausalLM:
    """The ``{"kind": "hf", "path": DIR}`` / ``{"kind": "hf", "config": {...}}`` model of a run spec."""
    from myopia.hf.spec import check_hf_model_spec

    check_hf_model_spec(spec, task)
    if "path" in spec:
        from transformers.utils import logging as hf_logging

        # one run's checkpoint is loaded many times (every run, then for the per-token gaps):
        # the measure's own progress bar says what is happening, a loading bar per load would not
        hf_logging.disable_progress_bar()
        try:
            model = HFCausalLM.from_pretrained(spec["path"], trust_remote_code=spec.get("trust_remote_code", False))
        finally:
            hf_logging.enable_progress_bar()
    else:
        model = HFCausalLM(from_config(spec["config"], seed=seed))
    torch.manual_seed(seed)
    return model
