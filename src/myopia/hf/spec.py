"""The run spec of an HF causal LM: which model, which tokenizer, which text task.

A notebook user and ``myopia gap --model/--hf-config`` must turn "this model directory" or
"this HF config" into the same task and model specs, checked the same way before anything
is trained or written; so the resolution lives here, and the command only parses flags.
"""

from __future__ import annotations

from pathlib import Path

from myopia.config import read_json_file
from myopia.hf.loading import check_tokenizer_files, check_weight_files, config_object, load_config, max_positions

# the fields of a text task an HF run keeps from the task spec it is given
_TEXT_TASK_FIELDS = ("data", "tokenizer", "vocab_size", "field", "seq_len", "seed")


def hf_model_spec(
    task: dict,
    *,
    model: str | Path | None = None,
    config: str | Path | None = None,
    trust_remote_code: bool = False,
) -> tuple[dict, dict]:
    """(text task spec, model spec) to train an HF causal LM on ``task["data"]``.

    ``model``: a local HF model directory; every run starts from its checkpoint (myopic
    fine-tuning) and its tokenizer is the default. ``config``: an HF config.json, or a
    directory holding one; that architecture is trained from scratch, and the tokenizer
    comes from ``task["tokenizer"]`` or from the config's directory. Exactly one of the two.

    ``task`` is a text task spec (``name`` None or ``"text"``); fields a text task does not
    have are dropped. Raises ValueError (FileNotFoundError for a missing config file, a
    :class:`~myopia.hf.ModelLoadError` for a model directory that cannot be loaded) before
    anything is trained or written.
    """
    if (model is None) == (config is None):
        raise ValueError("give exactly one of model (an HF model directory) or config (an HF config file or directory)")
    if task.get("name") not in (None, "text"):
        raise ValueError("an HF causal LM trains on text: use --data FILE (and no --task)")
    if not task.get("data"):
        raise ValueError("an HF model needs text to train on: pass --data FILE (.txt, .jsonl, ...)")
    task = {k: v for k, v in task.items() if k in _TEXT_TASK_FIELDS}
    task["name"] = "text"
    if model is not None:
        path = Path(model).expanduser()
        load_config(path, trust_remote_code=trust_remote_code)  # clear errors before anything is written
        check_weight_files(path)
        task.setdefault("tokenizer", str(path.resolve()))
        check_tokenizer_files(task["tokenizer"])
        spec = {"kind": "hf", "path": str(path.resolve())}
        if trust_remote_code:
            spec["trust_remote_code"] = True
        return task, spec
    cfg_path = Path(config).expanduser()
    cfg_file = cfg_path / "config.json" if cfg_path.is_dir() else cfg_path
    hf_config = read_json_file(cfg_file, "HF config")
    if not isinstance(hf_config, dict) or "model_type" not in hf_config:
        raise ValueError(
            f"HF config {cfg_file} has no model_type, so it is not a Hugging Face config; a myopia config file "
            f"(task/model/train sections) is given without a flag: myopia gap {cfg_file}"
        )
    if "tokenizer" not in task:
        if cfg_path.is_dir() and (cfg_path / "tokenizer_config.json").exists():
            task["tokenizer"] = str(cfg_path.resolve())
        else:
            raise ValueError("training an HF config from scratch needs a tokenizer: pass --tokenizer "
                             "(byte, bpe, or a model directory) or a config directory that holds one")
    return task, {"kind": "hf", "config": hf_config}


def check_hf_model_spec(spec: dict, task) -> None:
    """Refuse what :func:`myopia.hf.build_hf_model` would refuse — a bad spec, an unreadable
    config, truncated weights, a tokenizer larger than the model's head, sequences longer than
    its positions — without loading the weights (run before anything is written)."""
    if ("path" in spec) == ("config" in spec):
        raise ValueError('an "hf" model spec needs exactly one of "path" (a model directory) or "config" (HF config)')
    if "path" in spec:
        config = load_config(spec["path"], trust_remote_code=spec.get("trust_remote_code", False))
        check_weight_files(spec["path"])
    else:
        config = config_object(spec["config"])
    if getattr(task, "regression", False):
        raise ValueError("an HF causal LM needs a token task (e.g. --data FILE), not a regression task")
    vocab = getattr(config, "vocab_size", None)
    if vocab is not None and task.vocab_size > vocab:
        raise ValueError(
            f"tokenizer/model mismatch: the task's tokenizer has {task.vocab_size} tokens but the model's head "
            f"has {vocab}; use the tokenizer the model was trained with"
        )
    limit = max_positions(config)
    if limit is not None and task.seq_len > limit:
        raise ValueError(f"sequence length {task.seq_len} exceeds the model's {limit} positions; lower --seq-len")
