"""Tiny random models of every supported family, with a byte-level tokenizer.

Tests, the docs and a first try of ``myopia gap --model`` all need a Hugging Face model
directory that exists offline and loads in a second; these are built locally from a
config (no download) and saved exactly as a real checkpoint would be.
"""

from __future__ import annotations

import re
from pathlib import Path

from myopia.results import make_dir

from myopia.hf.loading import from_config


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


# the family's names for (layers, width, heads, MLP width); None: the family derives it
_SHAPE_KEYS = {
    "gpt2": ("n_layer", "n_embd", "n_head", None),
    "gpt_neox": ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size"),
    "llama": ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size"),
    "qwen2": ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size"),
    "mistral": ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size"),
}


def tiny_config(family: str, size: str | None = None) -> dict:
    """The tiny config of ``family``; ``size="L<layers>-d<width>"`` scales it (heads of width
    16, the family's MLP ratio kept), so a series of sizes of one family is a model series."""
    if family not in TINY_CONFIGS:
        raise ValueError(f"unknown family {family!r}; use one of {', '.join(TINY_CONFIGS)}")
    cfg = dict(TINY_CONFIGS[family])
    if size is None:
        return cfg
    m = re.fullmatch(r"L(\d+)-d(\d+)", size)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 16 or int(m.group(2)) % 16:
        raise ValueError(f"size {size!r} is not of the form L<layers>-d<width> with a width that is a multiple of 16, "
                         f"e.g. L2-d64")
    layers, width = int(m.group(1)), int(m.group(2))
    k_layers, k_width, k_heads, k_mlp = _SHAPE_KEYS[family]
    heads = width // 16
    if k_mlp is not None:
        cfg[k_mlp] = cfg[k_mlp] * width // cfg[k_width]
    if "num_key_value_heads" in cfg:
        cfg["num_key_value_heads"] = 2 if heads % 2 == 0 else 1
    cfg.update({k_layers: layers, k_width: width, k_heads: heads})
    return cfg


def make_tiny(out_dir: str | Path, family: str = "gpt2", seed: int = 0, size: str | None = None) -> Path:
    """Write a tiny random causal LM of ``family`` and a byte-level tokenizer to ``out_dir``;
    ``size`` (``"L2-d64"``) sets its depth and width (:func:`tiny_config`)."""
    shape = tiny_config(family, size)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} already exists and is not empty; choose another directory")
    tok = byte_tokenizer()
    cfg = {"model_type": family, "vocab_size": len(tok), "tie_word_embeddings": True,
           "bos_token_id": tok.eos_token_id, "eos_token_id": tok.eos_token_id, **shape}
    model = from_config(cfg, seed=seed)
    model.set_attn_implementation("sdpa")  # saved config names a standard implementation
    make_dir(out)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
