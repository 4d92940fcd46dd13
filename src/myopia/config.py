"""Typed configs are the single source of truth; the CLI flags are generated from them.

``add_dataclass_args`` turns every field of a config dataclass into ``--field-name`` with
the field's type, default and the comment written next to it in the source as help, so a
flag is documented exactly once: where the field is defined.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
from pathlib import Path


def field_comments(cls) -> dict[str, str]:
    """Field name -> the ``# comment`` on its line in the class source."""
    try:
        src = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    out = {}
    for line in src.splitlines():
        m = re.match(r"\s+(\w+)\s*:[^=]*=.*?#\s*(.+)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def _parse_bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def add_dataclass_args(
    parser: argparse.ArgumentParser,
    cls,
    *,
    skip: tuple[str, ...] = (),
    title: str | None = None,
    dest_prefix: str = "",
    defaults: dict | None = None,
    flag_prefix: str = "",
) -> None:
    """Add ``--field-name`` for each field of dataclass ``cls`` (default None = keep the
    dataclass default, so an explicit config file is not overridden by CLI defaults).
    ``flag_prefix`` ("control-", say) keeps two configs with a same-named field apart.

    ``cls`` may also be ``{label: dataclass}``, alternatives that share one set of flags
    (the synthetic tasks): a field name becomes one flag, typed and documented by the first
    class that has it, and its help names the labels that take it when not all do.
    ``defaults``: the values the command really uses where they differ from the dataclass's
    own (a preset); the help text states them, so help never disagrees with behaviour."""
    classes = cls if isinstance(cls, dict) else {"": cls}
    group = parser.add_argument_group(title or "/".join(c.__name__ for c in classes.values()))
    defaults = defaults or {}
    flags: dict[str, tuple] = {}  # field name -> (field, help, labels that take it)
    for label, c in classes.items():
        comments = field_comments(c)
        for f in dataclasses.fields(c):
            if f.name not in skip:
                flags.setdefault(f.name, (f, comments.get(f.name, ""), []))[2].append(label)
    for f, help_text, labels in flags.values():
        own = f.default if f.default is not dataclasses.MISSING else None
        kind = type(own) if own is not None else str
        default = defaults.get(f.name, own)
        conv = _parse_bool if kind is bool else kind
        users = "" if len(labels) == len(classes) else f"{', '.join(labels)}; "
        group.add_argument(
            "--" + flag_prefix + f.name.replace("_", "-"),
            dest=dest_prefix + f.name,
            type=conv,
            default=None,
            metavar=kind.__name__.upper(),
            help=f"{help_text} ({users}default: {default})",
        )


def dataclass_overrides(args: argparse.Namespace, cls, dest_prefix: str = "") -> dict:
    """The fields of ``cls`` (a dataclass, or ``{label: dataclass}``) given on the command line."""
    out = {}
    for c in cls.values() if isinstance(cls, dict) else (cls,):
        for f in dataclasses.fields(c):
            val = getattr(args, dest_prefix + f.name, None)
            if val is not None:
                out[f.name] = val
    return out


def read_json_file(path: str | Path, what: str):
    """The parsed JSON of ``path``, or one clear error naming the file and the problem."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{what} {p} does not exist")
    if p.is_dir():
        raise ValueError(f"{what} {p} is a directory; give the path of a .json file")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} {p} is not valid JSON: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{what} {p} cannot be read: {e}") from None


CONFIG_SECTIONS = ("task", "model", "train", "seeds", "detach", "baseline", "measure")


def load_config_file(path: str | Path) -> dict:
    """A JSON config file: {"task": {...}, "model": {...}, "train": {...}, ...}. The model and
    train sections are checked here against their dataclasses (unknown keys, wrong types),
    so a mistake names the file and the valid keys."""
    from myopia.model import GPTConfig
    from myopia.train import TrainConfig

    p = Path(path).expanduser()
    data = read_json_file(p, "config file")
    if not isinstance(data, dict):
        raise ValueError(f"config file {p} must hold a JSON object with task/model/train sections")
    unknown = set(data) - set(CONFIG_SECTIONS)
    if unknown:
        raise ValueError(f"config file {p}: unknown sections {sorted(unknown)}; use {', '.join(CONFIG_SECTIONS[:-1])}")
    for section in ("task", "model", "train"):
        if section in data and not isinstance(data[section], dict):
            raise ValueError(f"config file {p}: section {section!r} must be a JSON object of settings")
    check_fields(TrainConfig, data.get("train", {}), f"config file {p}, section 'train'")
    model = {k: v for k, v in data.get("model", {}).items() if k != "kind"}
    if data.get("model", {}).get("kind", "gpt") == "gpt":
        check_fields(GPTConfig, model, f"config file {p}, section 'model'")
    return data


def check_fields(cls, values: dict, where: str) -> None:
    """Refuse keys that are not fields of dataclass ``cls`` and values of the wrong type."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {', '.join(unknown)}; valid: {', '.join(fields)}")
    for name, val in values.items():
        check_type(cls.__name__, name, val, fields[name].default)


def check_type(owner: str, name: str, value, default) -> None:
    """``value`` must have the type of the field's default (an int where a float is expected is fine)."""
    if default is None or default is dataclasses.MISSING or value is None:
        return
    kind = type(default)
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise ValueError(f"{owner}.{name} must be a {kind.__name__} (like {default!r}), got {value!r}")


def check_field_types(obj) -> None:
    """Type check of every field of a dataclass instance (for its ``__post_init__``)."""
    for f in dataclasses.fields(obj):
        check_type(type(obj).__name__, f.name, getattr(obj, f.name), f.default)
