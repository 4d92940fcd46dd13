"""Text corpora as a deterministic stream of documents.

A :class:`Corpus` has a ``fingerprint`` (changes when its text could change; part of every
cache key) and ``documents()``, an iterator over its documents in a fixed order that can be
walked as often as needed without holding the corpus in memory.

Sources (``open_corpus(data, field)``):

* ``None`` / ``"stdlib-docstrings"`` — the built-in corpus: the docstrings of the running
  Python's standard library (~1.8 MB of English technical prose). Each module is one
  document: its module, class and function docstrings in source order, found with ``ast``
  (no module is imported). Test packages and site-packages are left out; files are taken
  in sorted path order. Extracted once and cached as JSON lines.
* ``"stdlib-source"`` — the same library's source code, one document per file.
* a ``.txt`` (or other text) file — documents are its blank-line separated paragraphs;
* a ``.jsonl`` file — one document per line, from the string field ``field``;
* a ``.parquet`` file — one document per row of column ``field`` (read in record batches);
* a directory saved with ``datasets``' ``save_to_disk`` — one document per row of column
  ``field`` (every split of a DatasetDict, in stored order);
* any other directory — its ``.txt``/``.md``/``.rst`` files (each one document) and
  ``.jsonl``/``.parquet`` files (records), recursively in sorted path order;
* ``"hf:NAME"`` or ``"hf:NAME:CONFIG"`` — a Hugging Face hub dataset (needs the network).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from myopia.data.tokenization import cache_root

BUILTIN = ("stdlib-docstrings", "stdlib-source")
TEXT_SUFFIXES = (".txt", ".md", ".rst", ".text")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "__pycache__"}
EXTRACTOR_VERSION = "v1"


@dataclass
class Corpus:
    name: str  # what it is, for messages and results
    fingerprint: str
    _documents: Callable[[], Iterator[str]]

    def documents(self) -> Iterator[str]:
        """Non-empty documents, in the corpus's fixed order."""
        for doc in self._documents():
            if doc and not doc.isspace():
                yield doc


def open_corpus(data: str | os.PathLike | None = None, field: str = "text") -> Corpus:
    """The corpus ``data`` names (see the module docstring)."""
    if data is None or str(data) == "stdlib-docstrings":
        return stdlib_docstrings()
    if str(data) == "stdlib-source":
        return stdlib_source()
    if str(data).startswith("hf:"):
        return hub_dataset(str(data)[3:], field)
    p = Path(data).expanduser()
    if not p.exists():
        raise FileNotFoundError(
            f"data {str(data)!r} does not exist; give a .txt/.jsonl/.parquet file, a directory, "
            f"a dataset saved with save_to_disk, hf:NAME for the hub, or leave --data out for the built-in corpus"
        )
    if not os.access(p, os.R_OK):
        raise ValueError(f"cannot read {p}: permission denied; check the file's permissions")
    if p.is_dir():
        if (p / "dataset_dict.json").exists() or (p / "state.json").exists():
            return disk_dataset(p, field)
        return directory(p, field)
    return single_file(p, field)


# --------------------------------------------------------------------------- built-in
def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(root: Path) -> list[Path]:
    """The library's .py files in sorted relative-path order, without tests and site-packages."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for f in filenames:
            if f.endswith(".py") and not f.startswith("test_"):
                files.append(Path(dirpath) / f)
    return sorted(files, key=lambda f: f.relative_to(root).as_posix())


def module_docstrings(source: bytes) -> str:
    """Module, class and function docstrings of one source file, in source order."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return ""
    docs: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                docs.append(doc)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return "\n\n".join(docs)


def stdlib_docstrings(root: Path | None = None) -> Corpus:
    root = Path(root) if root is not None else stdlib_root()
    key = hashlib.sha256(f"{EXTRACTOR_VERSION}/{sys.version}/{root.resolve()}".encode()).hexdigest()[:16]
    path = cache_root() / "corpora" / f"stdlib-docstrings-{key}.jsonl"

    def documents() -> Iterator[str]:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + f".tmp{os.getpid()}")
            with open(tmp, "w", encoding="utf-8") as f:
                for file in stdlib_files(root):
                    doc = module_docstrings(file.read_bytes())
                    if doc:
                        f.write(json.dumps(doc) + "\n")
            os.replace(tmp, path)
        with open(path, encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)

    return Corpus(f"stdlib-docstrings (Python {sys.version.split()[0]})", f"stdlib-docstrings/{key}", documents)


def stdlib_source(root: Path | None = None) -> Corpus:
    root = Path(root) if root is not None else stdlib_root()
    key = hashlib.sha256(f"{EXTRACTOR_VERSION}/{sys.version}/{root.resolve()}".encode()).hexdigest()[:16]

    def documents() -> Iterator[str]:
        for file in stdlib_files(root):
            try:
                yield file.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue

    return Corpus(f"stdlib-source (Python {sys.version.split()[0]})", f"stdlib-source/{key}", documents)


# --------------------------------------------------------------------------- local files
def _content_hash(files: list[Path], root: Path | None = None) -> str:
    """Hash of the files' names and bytes; remembered per (path, size, mtime), so a large
    corpus is read once, not by every run that opens it."""
    try:
        stats = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    except OSError as e:
        raise ValueError(f"cannot read {e.filename}: {e.strerror}; check the path and its permissions") from None
    memo = cache_root() / "hashes" / (hashlib.sha256(json.dumps([str(root), stats]).encode()).hexdigest()[:24] + ".txt")
    if memo.exists():
        return memo.read_text().strip()
    digest = _hash_files(files, root)
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_name(memo.name + f".tmp{os.getpid()}")
    tmp.write_text(digest)
    os.replace(tmp, memo)
    return digest


def _hash_files(files: list[Path], root: Path | None) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update((f.relative_to(root).as_posix() if root else f.name).encode() + b"\0")
        try:
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        except OSError as e:
            raise ValueError(f"cannot read {f}: {e.strerror}; check the path and its permissions") from None
    return h.hexdigest()[:20]


def _open_text(path: Path):
    try:
        return open(path, encoding="utf-8")
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror}; check the path and its permissions") from None


def _not_utf8(path: Path, e: UnicodeDecodeError) -> ValueError:
    return ValueError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); convert it to UTF-8 first")


def paragraphs(path: Path) -> Iterator[str]:
    """Blank-line separated paragraphs of a text file, streamed."""
    buf: list[str] = []
    with _open_text(path) as f:
        try:
            for line in f:
                if line.strip():
                    buf.append(line)
                elif buf:
                    yield "".join(buf).strip("\n")
                    buf = []
        except UnicodeDecodeError as e:
            raise _not_utf8(path, e) from None
    if buf:
        yield "".join(buf).strip("\n")


def whole_file(path: Path) -> Iterator[str]:
    with _open_text(path) as f:
        try:
            yield f.read()
        except UnicodeDecodeError as e:
            raise _not_utf8(path, e) from None


def jsonl_records(path: Path, field: str) -> Iterator[str]:
    with _open_text(path) as f:
        try:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{lineno} is not valid JSON ({e.msg}); one JSON object per line is expected") from None
                if not isinstance(rec, dict) or field not in rec:
                    keys = sorted(rec) if isinstance(rec, dict) else []
                    raise ValueError(
                        f"{path}:{lineno} has no field {field!r} (fields: {', '.join(keys) or 'none'}); "
                        f"choose the text field with --field"
                    )
                if not isinstance(rec[field], str):
                    raise ValueError(f"{path}:{lineno}: field {field!r} is a {type(rec[field]).__name__}, not text; choose another --field")
                yield rec[field]
        except UnicodeDecodeError as e:
            raise _not_utf8(path, e) from None


def parquet_records(path: Path, field: str) -> Iterator[str]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except OSError as e:
        raise ValueError(f"cannot read {path} as Parquet ({e}); check the file") from None
    names = pf.schema_arrow.names
    if field not in names:
        raise ValueError(f"{path} has no column {field!r} (columns: {', '.join(names)}); choose the text column with --field")
    for batch in pf.iter_batches(columns=[field], batch_size=1024):
        for v in batch.column(0).to_pylist():
            if v is not None:
                yield v


def single_file(path: Path, field: str) -> Corpus:
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        docs, kind = (lambda: jsonl_records(path, field)), f"jsonl/{field}"
        next(iter(docs()), None)  # a missing field is reported now, not in a worker
    elif suffix == ".parquet":
        docs, kind = (lambda: parquet_records(path, field)), f"parquet/{field}"
        next(iter(docs()), None)
    else:
        docs, kind = (lambda: paragraphs(path)), "paragraphs"
    return Corpus(str(path), f"file/{kind}/{_content_hash([path])}", docs)


def directory(root: Path, field: str) -> Corpus:
    files = sorted(
        (f for f in root.rglob("*") if f.is_file() and f.suffix.lower() in TEXT_SUFFIXES + JSONL_SUFFIXES + (".parquet",)),
        key=lambda f: f.relative_to(root).as_posix(),
    )
    if not files:
        raise ValueError(
            f"directory {root} holds no .txt/.md/.rst/.jsonl/.parquet files; point --data at a file or another directory"
        )

    def documents() -> Iterator[str]:
        for f in files:
            s = f.suffix.lower()
            if s in JSONL_SUFFIXES:
                yield from jsonl_records(f, field)
            elif s == ".parquet":
                yield from parquet_records(f, field)
            else:
                yield from whole_file(f)

    return Corpus(str(root), f"dir/{field}/{_content_hash(files, root)}", documents)


# --------------------------------------------------------------------------- HF datasets
def _dataset_corpus(ds, name: str, key: str, field: str) -> Corpus:
    from datasets import DatasetDict

    parts = list(ds.values()) if isinstance(ds, DatasetDict) else [ds]
    for part in parts:
        if field not in part.column_names:
            raise ValueError(
                f"dataset {name} has no column {field!r} (columns: {', '.join(part.column_names)}); "
                f"choose the text column with --field"
            )
    fingerprint = hashlib.sha256("/".join(p._fingerprint for p in parts).encode()).hexdigest()[:20]

    def documents() -> Iterator[str]:
        for part in parts:
            for batch in part.select_columns([field]).iter(batch_size=1024):
                yield from (v for v in batch[field] if v is not None)

    return Corpus(name, f"{key}/{field}/{fingerprint}", documents)


def disk_dataset(path: Path, field: str) -> Corpus:
    from datasets import load_from_disk

    try:
        ds = load_from_disk(str(path))
    except (OSError, ValueError, FileNotFoundError) as e:
        raise ValueError(f"cannot load the dataset saved in {path} ({str(e).splitlines()[0]}); re-save it with save_to_disk") from None
    return _dataset_corpus(ds, str(path), "disk", field)


def hub_dataset(spec: str, field: str) -> Corpus:
    from datasets import load_dataset

    name, _, config = spec.partition(":")
    try:
        ds = load_dataset(name, config or None, split="train")
    except Exception as e:  # network, unknown name, ...: one clear line
        raise ValueError(
            f"cannot load hub dataset {name!r} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            f"check the name and the network, or save it with save_to_disk and pass the directory"
        ) from None
    return _dataset_corpus(ds, f"hf:{spec}", f"hub/{spec}", field)
