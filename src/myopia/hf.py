"""Any Hugging Face causal LM under a gradient policy.

``load(path, policy)`` loads a causal LM and its tokenizer from a local directory (or a hub
name when online) and switches every attention layer to the policy; ``convert(model,
policy)`` does the same to a model already in memory; :class:`HFCausalLM` wraps one so it
is called exactly like the built-in GPT — ``model(x, policy=...) -> logits (B, T, V)``,
``past=`` / ``past_states`` for a frozen past — and therefore trains through
:func:`myopia.train.train`, runs in ``myopia gap`` and ``myopia bonus``, and serves any
measure written against the built-in GPT's interface (the offset decomposition included).

Design decisions:

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
  context variable set by :class:`HFCausalLM`; without one, the
  policy given to ``load``/``convert`` applies, so a plain ``model(input_ids)`` works.
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
* Loading is safe: safetensors when present (transformers' ``weights_only`` loading
  otherwise), and no code from the model directory runs unless ``trust_remote_code=True``.
"""

from __future__ import annotations

import json
import sys
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from myopia.attention import ConstantPast, constant_past, policy_attention
from myopia.model import PastState
from myopia.policy import GradientPolicy

ATTN_NAME = "myopia"

# model_type -> (family name, names of the modules that project keys/values)
SUPPORTED_FAMILIES = {
    "gpt2": "GPT-2",
    "gpt_neox": "GPT-NeoX (Pythia)",
    "llama": "Llama",
    "qwen2": "Qwen2",
    "mistral": "Mistral",
}


class UnsupportedModelError(ValueError):
    pass


class ModelLoadError(ValueError):
    pass


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


_CONTEXT: ContextVar[PolicyContext | None] = ContextVar("myopia_hf_policy", default=None)


def _context(module: nn.Module) -> PolicyContext:
    ctx = _CONTEXT.get()
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


def _register() -> None:
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
    _register()
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


# ---------------------------------------------------------------------- loading
def _check_model_dir(path: str | Path) -> tuple[str, bool]:
    """(path or hub name, is_local)."""
    p = Path(path).expanduser()
    if p.exists():
        if not p.is_dir():
            raise ModelLoadError(f"{p} is a file, not a model directory; pass the directory that holds config.json")
        if not (p / "config.json").exists():
            raise ModelLoadError(
                f"{p} is not a Hugging Face model directory (no config.json); save a model there with "
                f"model.save_pretrained(DIR) or create a tiny one with `python -m myopia.hf make-tiny DIR`"
            )
        return str(p), True
    s = str(path)
    if s.count("/") == 1 and not s.startswith((".", "/", "~")):
        return s, False  # a hub name; needs the network
    raise ModelLoadError(f"model path {s} does not exist")


def load_config(path: str | Path, *, trust_remote_code: bool = False):
    from transformers import AutoConfig

    where, local = _check_model_dir(path)
    try:
        config = AutoConfig.from_pretrained(where, trust_remote_code=trust_remote_code, local_files_only=local)
    except ValueError as e:
        if "trust_remote_code" in str(e):
            raise ModelLoadError(
                f"the model at {where} needs custom code from its directory; pass trust_remote_code=True "
                f"(--trust-remote-code) only if you trust it"
            ) from None
        raise ModelLoadError(f"cannot read the model config at {where}: {str(e).splitlines()[0]}") from None
    except OSError as e:
        raise ModelLoadError(f"cannot read the model config at {where}: {str(e).splitlines()[0]}") from None
    check_supported(config)
    return config


def load_tokenizer(path: str | Path, *, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    where, local = _check_model_dir(path)
    try:
        return AutoTokenizer.from_pretrained(where, trust_remote_code=trust_remote_code, local_files_only=local)
    except ValueError as e:
        if "trust_remote_code" in str(e):
            raise ModelLoadError(
                f"the tokenizer at {where} needs custom code; pass trust_remote_code=True only if you trust it"
            ) from None
        raise ModelLoadError(f"cannot load a tokenizer from {where}: {str(e).splitlines()[0]}") from None
    except (OSError, TypeError) as e:
        raise ModelLoadError(
            f"cannot load a tokenizer from {where} ({str(e).splitlines()[0]}); the directory needs the tokenizer "
            f"files saved with tokenizer.save_pretrained(DIR)"
        ) from None


def check_tokenizer_fits(tokenizer, model: nn.Module, where: str = "") -> None:
    n_emb = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > n_emb:
        raise ModelLoadError(
            f"tokenizer/model mismatch{' in ' + where if where else ''}: the tokenizer has {len(tokenizer)} tokens "
            f"but the model's embedding has {n_emb} rows; use the tokenizer the model was trained with"
        )


def load_model(
    path: str | Path,
    policy: GradientPolicy | None = None,
    *,
    trust_remote_code: bool = False,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
) -> nn.Module:
    """The HF causal LM at ``path`` with myopia attention (no tokenizer)."""
    from transformers import AutoModelForCausalLM

    config = load_config(path, trust_remote_code=trust_remote_code)
    where, local = _check_model_dir(path)
    _register()
    has_st = local and any(Path(where).glob("*.safetensors"))
    try:
        model = AutoModelForCausalLM.from_pretrained(
            where, config=config, attn_implementation=ATTN_NAME, dtype=dtype,
            trust_remote_code=trust_remote_code, local_files_only=local, use_safetensors=True if has_st else None,
        )
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot load model weights from {where}: {str(e).splitlines()[0]}") from None
    return convert(model.to(device), policy)


def load(
    path: str | Path,
    policy: GradientPolicy | None = None,
    *,
    trust_remote_code: bool = False,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
):
    """Load (model, tokenizer) from a local directory (or a hub name when online).

    The model is the HF causal LM itself with every attention layer under ``policy`` (the
    default for calls that set none). Wrap it in :class:`HFCausalLM` to train it with
    :func:`myopia.train.train`.
    """
    model = load_model(path, policy, trust_remote_code=trust_remote_code, dtype=dtype, device=device)
    tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
    check_tokenizer_fits(tokenizer, model, str(path))
    return model, tokenizer


def from_config(config, policy: GradientPolicy | None = None, *, seed: int | None = None) -> nn.Module:
    """A freshly initialised HF causal LM (from a config object, dict or config.json path)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if isinstance(config, (str, Path)):
        p = Path(config)
        if p.is_dir():
            p = p / "config.json"
        if not p.exists():
            raise ModelLoadError(f"HF config {config} does not exist")
        config = json.loads(p.read_text())
    if isinstance(config, dict):
        d = dict(config)
        model_type = d.pop("model_type", None)
        if model_type is None:
            raise ModelLoadError("an HF config needs a model_type (e.g. \"gpt2\", \"gpt_neox\", \"llama\")")
        if model_type not in SUPPORTED_FAMILIES:
            check_supported(type("C", (), {"model_type": model_type}))
        for k in ("architectures", "transformers_version", "auto_map", "dtype", "torch_dtype"):
            d.pop(k, None)
        config = AutoConfig.for_model(model_type, **d)
    check_supported(config)
    _register()
    if seed is not None:
        torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation=ATTN_NAME, dtype=torch.float32)
    return convert(model, policy)


def max_positions(config) -> int | None:
    """Longest sequence a model with learned positions covers (None: rotary, no hard limit)."""
    if config.model_type == "gpt2":
        return config.n_positions
    return None


# ---------------------------------------------------------------------- adapter
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
        token = _CONTEXT.set(PolicyContext(policy, impl, past, record))
        try:
            out = self.hf(input_ids=x, attention_mask=attention_mask, use_cache=False, output_hidden_states=return_hidden)
        finally:
            _CONTEXT.reset(token)
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
    if ("path" in spec) == ("config" in spec):
        raise ValueError('an "hf" model spec needs exactly one of "path" (a model directory) or "config" (HF config)')
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
    if getattr(task, "regression", False):
        raise ValueError("an HF causal LM needs a token task (e.g. --data FILE), not a regression task")
    if task.vocab_size > model.vocab_size:
        raise ValueError(
            f"tokenizer/model mismatch: the task's tokenizer has {task.vocab_size} tokens but the model's head "
            f"has {model.vocab_size}; use the tokenizer the model was trained with"
        )
    limit = max_positions(model.config)
    if limit is not None and task.seq_len > limit:
        raise ValueError(f"sequence length {task.seq_len} exceeds the model's {limit} positions; lower --seq-len")
    torch.manual_seed(seed)
    return model


# ---------------------------------------------------------------------- tiny models
def byte_tokenizer():
    """A byte-level BPE tokenizer with no merges (256 byte tokens + <|endoftext|>), built locally."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    vocab["<|endoftext|>"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>", unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )


TINY_CONFIGS = {
    "gpt2": dict(n_layer=2, n_embd=64, n_head=4, n_positions=128),
    "gpt_neox": dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=256,
                     max_position_embeddings=128, rotary_pct=0.25),
    "llama": dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=128, max_position_embeddings=128),
    "qwen2": dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=128, max_position_embeddings=128),
    "mistral": dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                    intermediate_size=128, max_position_embeddings=128, sliding_window=32),
}


def make_tiny(out_dir: str | Path, family: str = "gpt2", seed: int = 0) -> Path:
    """Write a tiny random causal LM of ``family`` and a byte-level tokenizer to ``out_dir``."""
    if family not in TINY_CONFIGS:
        raise ValueError(f"unknown family {family!r}; use one of {', '.join(TINY_CONFIGS)}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} already exists and is not empty; choose another directory")
    tok = byte_tokenizer()
    cfg = {"model_type": family, "vocab_size": len(tok), "tie_word_embeddings": True,
           "bos_token_id": tok.eos_token_id, "eos_token_id": tok.eos_token_id, **TINY_CONFIGS[family]}
    model = from_config(cfg, seed=seed)
    model.set_attn_implementation("sdpa")  # saved config names a standard implementation
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m myopia.hf", description="Hugging Face model tools for myopia.")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("make-tiny", help="write a tiny random causal LM and a byte-level tokenizer to DIR")
    t.add_argument("dir")
    t.add_argument("--family", default="gpt2", choices=sorted(TINY_CONFIGS))
    t.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        out = make_tiny(args.dir, args.family, args.seed)
    except (ValueError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote a tiny {args.family} model and tokenizer to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
