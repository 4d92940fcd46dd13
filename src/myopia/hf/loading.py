"""Loading Hugging Face causal LMs and tokenizers, ready to run under a gradient policy.

Kept apart from the attention plumbing because what goes wrong here is the user's setup,
not the method: a wrong directory, an unsupported family, code that would run from the
model directory, a tokenizer that does not fit the embedding. Every such case raises
:class:`ModelLoadError` (or :class:`~myopia.hf.UnsupportedModelError`) with a message that
says what to do, before anything is trained or written.

Loading is safe: safetensors when present (transformers' ``weights_only`` loading
otherwise), and no code from the model directory runs unless ``trust_remote_code=True``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn

from myopia.hf.attention import ATTN_NAME, SUPPORTED_FAMILIES, check_supported, convert, register
from myopia.policy import GradientPolicy


class ModelLoadError(ValueError):
    """A model directory, config or tokenizer that cannot be used as given."""


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


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "spiece.model")


def check_tokenizer_files(path: str | Path) -> None:
    """A local model directory used as a tokenizer must hold tokenizer files; without them
    transformers would build an empty tokenizer and every text would be one unknown token."""
    p = Path(path).expanduser()
    if p.is_dir() and not any((p / name).exists() for name in TOKENIZER_FILES):
        raise ModelLoadError(
            f"the tokenizer is missing: {p} holds no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...); "
            f"save them there with tokenizer.save_pretrained(DIR), or pass --tokenizer DIR|byte|bpe"
        )


def check_weight_files(path: str | Path) -> None:
    """Every *.safetensors file of a model directory is complete: the header's tensor offsets
    end exactly at the end of the file (a truncated or corrupt download is named here, before
    anything is written, rather than deep inside a training worker)."""
    import json
    import struct

    for f in sorted(Path(path).expanduser().glob("*.safetensors")):
        try:
            with open(f, "rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(n))
            end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
            ok = f.stat().st_size == 8 + n + end
        except (OSError, ValueError, KeyError, TypeError, struct.error, MemoryError, OverflowError):
            ok = False
        if not ok:
            raise ModelLoadError(f"{f} is truncated or not a safetensors file; copy or save the model again")


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
    register()
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
    from transformers import AutoModelForCausalLM

    config = config_object(config)
    register()
    if seed is not None:
        torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation=ATTN_NAME, dtype=torch.float32)
    return convert(model, policy)


def config_object(config):
    """An HF config object of a supported family, from a config object, dict or config.json path."""
    from transformers import AutoConfig

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
    return config


def max_positions(config) -> int | None:
    """Longest sequence a model with learned positions covers (None: rotary, no hard limit)."""
    if config.model_type == "gpt2":
        return config.n_positions
    return None
