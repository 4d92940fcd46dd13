"""Flags that put a Hugging Face causal LM into a training command (``myopia gap``).

``--model DIR`` starts every run from the checkpoint in DIR (myopic fine-tuning, the
paper's Pythia protocol); ``--hf-config FILE|DIR`` trains that HF architecture from scratch.
Text comes from ``--data`` and is tokenized by the model's tokenizer (or ``--tokenizer``).
Only the flags live here; :func:`myopia.hf.hf_model_spec` resolves and checks them.
"""

from __future__ import annotations

import argparse

from myopia.config import dataclass_overrides
from myopia.hf import hf_model_spec
from myopia.model import GPTConfig
from myopia.presets import train_preset


def add_hf_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Hugging Face model (instead of the built-in GPT)")
    x = g.add_mutually_exclusive_group()
    x.add_argument("--model", dest="hf_model", default=None,
                   help="local HF model directory: both runs start from this checkpoint (text from --data)")
    # not --config: the positional CONFIG of a training command is a myopia config file
    x.add_argument("--hf-config", dest="hf_config", default=None,
                   help="HF config.json (or a directory holding one): train that architecture from scratch")
    g.add_argument("--trust-remote-code", action="store_true", help="allow custom code from the model directory")


def uses_hf_model(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "hf_model", None) or getattr(args, "hf_config", None))


def hf_train_defaults(args: argparse.Namespace) -> dict:
    """The training preset of the model the flags name (the same rule as ``myopia_gap``'s default)."""
    return {"train": dict(train_preset({"kind": "hf"} if uses_hf_model(args) else {}))}


def apply_hf_model(args: argparse.Namespace, task: dict, model: dict) -> tuple[dict, dict]:
    """Task and model spec for an HF model; unchanged when no HF model was asked for."""
    if not uses_hf_model(args):
        return task, model
    if dataclass_overrides(args, GPTConfig, "model_"):
        raise ValueError("built-in GPT flags (--n-layer, --n-embd, ...) do not apply to an HF model; "
                         "put the architecture in the HF config instead")
    if task.get("name") == "precache" and not args.task:  # the command's default task, not the user's choice
        task = {k: v for k, v in task.items() if k != "name"}
    return hf_model_spec(task, model=args.hf_model, config=args.hf_config, trust_remote_code=args.trust_remote_code)
