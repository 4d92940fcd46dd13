"""Any Hugging Face causal LM under a gradient policy.

``load(path, policy)`` loads a causal LM and its tokenizer from a local directory (or a hub
name when online) and switches every attention layer to the policy; ``convert(model,
policy)`` does the same to a model already in memory; :class:`HFCausalLM` wraps one so it
is called exactly like the built-in GPT — ``model(x, policy=...) -> logits (B, T, V)``,
``past=`` / ``past_states`` for a frozen past — and therefore trains through
:func:`myopia.train.train`, runs in ``myopia gap`` and ``myopia bonus``, and serves any
measure written against the built-in GPT's interface (the offset decomposition included).

The package is split by what can go wrong and who needs it, so each part reads alone:

* :mod:`myopia.hf.attention` — the ``"myopia"`` attention function registered with
  transformers, the per-layer pre-hook that supplies the constant past, ``convert``;
* :mod:`myopia.hf.loading` — safe loading of config, weights and tokenizer, with errors
  that say what to do; ``from_config`` for training an architecture from scratch;
* :mod:`myopia.hf.adapter` — :class:`HFCausalLM` and ``build_hf_model`` (run specs);
* :mod:`myopia.hf.tiny` — tiny random models and a byte tokenizer, offline;
* :mod:`myopia.hf.spec` — ``hf_model_spec``: a model directory or HF config as a run's
  task and model spec (what ``myopia gap --model/--hf-config`` uses);
* ``python -m myopia.hf make-tiny DIR`` (:mod:`myopia.hf.__main__`).
"""

from myopia.hf.adapter import HFCausalLM, build_hf_model
from myopia.hf.attention import SUPPORTED_FAMILIES, UnsupportedModelError, attention_modules, convert
from myopia.hf.loading import (
    ModelLoadError,
    check_tokenizer_fits,
    from_config,
    load,
    load_config,
    load_model,
    load_tokenizer,
    max_positions,
)
from myopia.hf.spec import check_hf_model_spec, hf_model_spec
from myopia.hf.tiny import TINY_CONFIGS, byte_tokenizer, make_tiny

__all__ = [
    "HFCausalLM",
    "ModelLoadError",
    "SUPPORTED_FAMILIES",
    "TINY_CONFIGS",
    "UnsupportedModelError",
    "attention_modules",
    "build_hf_model",
    "byte_tokenizer",
    "check_hf_model_spec",
    "check_tokenizer_fits",
    "convert",
    "from_config",
    "hf_model_spec",
    "load",
    "load_config",
    "load_model",
    "load_tokenizer",
    "make_tiny",
    "max_positions",
]
