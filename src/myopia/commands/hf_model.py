"""Flags that put a Hugging Face causal LM into a training command (``myopia gap``).

``--model DIR`` starts every run from the checkpoint in DIR (myopic fine-tuning, the
paper's Pythia protocol); ``--config FILE|DIR`` trains that HF architecture from scratch.
Text comes from ``--data`` and is tokenized by the model's tokenizer (or ``--tokenizer``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from myopia.config import dataclass_overrides
from myopia.model import GPTConfig

# Fine-tuning a pretrained model wants a far smaller step size than the built-in GPT's default.
HF_TRAIN_DEFAULTS = dict(steps=300, batch_size=16, lr=1e-4, warmup_steps=20, eval_every=50, checkpoint_every=100)


def add_hf_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Hugging Face model (instead of the built-in GPT)")
    x = g.add_mutually_exclusive_group()
    x.add_argument("--model", dest="hf_model", default=None,
                   help="local HF model directory: both runs start from this checkpoint (text from --data)")
    x.add_argument("--config", "--hf-config", dest="hf_config", default=None,
                   help="HF config.json (or a directory holding one): train that architecture from scratch")
    g.add_argument("--trust-remote-code", action="store_true", help="allow custom code from the model directory")


def uses_hf_model(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "hf_model", None) or getattr(args, "hf_config", None))


def hf_train_defaults(args: argparse.Namespace) -> dict:
    return {"train": dict(HF_TRAIN_DEFAULTS)} if uses_hf_model(args) else {}


def apply_hf_model(args: argparse.Namespace, task: dict, model: dict) -> tuple[dict, dict]:
    """Task and model spec for an HF model; unchanged when no HF model was asked for."""
    if not uses_hf_model(args):
        return task, model
    if dataclass_overrides(args, GPTConfig, "model_"):
        raise ValueError("built-in GPT flags (--n-layer, --n-embd, ...) do not apply to an HF model; "
                         "put the architecture in the HF config instead")
    if task.get("name") not in (None, "text", "precache") or (task.get("name") == "precache" and args.task):
        raise ValueError("an HF causal LM trains on text: use --data FILE (and no --task)")
    if not task.get("data"):
        raise ValueError("an HF model needs text to train on: pass --data FILE (.txt, .jsonl, ...)")
    task = {k: v for k, v in task.items() if k in ("data", "tokenizer", "vocab_size", "field", "seq_len", "seed")}
    task["name"] = "text"
    if args.hf_model:
        from myopia.hf import load_config

        path = Path(args.hf_model).expanduser()
        load_config(path, trust_remote_code=args.trust_remote_code)  # clear error before anything is written
        task.setdefault("tokenizer", str(path.resolve()))
        spec = {"kind": "hf", "path": str(path.resolve())}
        if args.trust_remote_code:
            spec["trust_remote_code"] = True
        return task, spec
    import json

    cfg_path = Path(args.hf_config).expanduser()
    cfg_file = cfg_path / "config.json" if cfg_path.is_dir() else cfg_path
    if not cfg_file.exists():
        raise FileNotFoundError(f"HF config {cfg_file} does not exist")
    try:
        config = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"HF config {cfg_file} is not valid JSON: {e}") from None
    if "tokenizer" not in task:
        if cfg_path.is_dir() and (cfg_path / "tokenizer_config.json").exists():
            task["tokenizer"] = str(cfg_path.resolve())
        else:
            raise ValueError("training an HF config from scratch needs a tokenizer: pass --tokenizer "
                             "(byte, bpe, or a model directory) or a config directory that holds one")
    return task, {"kind": "hf", "config": config}
