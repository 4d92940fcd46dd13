"""Tokenizers for text tasks: bytes (default), a BPE trained on the corpus, or an HF model's.

All three offer the same small interface:

* ``encode_batch(texts) -> list[list[int]]`` (no special tokens added);
* ``eod``: the end-of-document id placed between documents, or None;
* ``n_tokens``: how many ids it can produce;
* ``decode(ids) -> str``;
* ``fingerprint``: a string that changes whenever the mapping text -> ids could change
  (part of the token cache key).

Design decisions:
* Bytes need no training and no files: ids 0..255 are the UTF-8 bytes, 256 ends a document.
* The BPE (Hugging Face ``tokenizers``, byte-level, so nothing is out of vocabulary) is
  trained on the *train* split only, so held-out documents never shape the vocabulary, and
  cached by a hash of that training text and the vocabulary size.
* A local model directory gives that model's tokenizer through ``AutoTokenizer`` with
  ``local_files_only=True`` and no remote code.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

EOD_TEXT = "<|endoftext|>"
MIN_BPE_VOCAB = 258  # 256 byte symbols + end-of-document + at least one merge
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".ckpt", ".gguf", ".onnx")


def cache_root() -> Path:
    """Where corpora, tokenizers and token ids are cached: $MYOPIA_CACHE or ~/.cache/myopia."""
    return Path(os.environ.get("MYOPIA_CACHE") or Path.home() / ".cache" / "myopia")


class ByteTokenizer:
    """UTF-8 bytes; id 256 ends a document."""

    n_tokens = 257
    eod = 256
    fingerprint = "byte-v1"

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        return [np.frombuffer(t.encode("utf-8"), dtype=np.uint8) for t in texts]

    def decode(self, ids: Iterable[int]) -> str:
        out, buf = [], bytearray()
        for i in ids:
            i = int(i)
            if i == self.eod:
                out.append(buf.decode("utf-8", errors="replace") + EOD_TEXT)
                buf = bytearray()
            else:
                buf.append(i)
        return "".join(out) + buf.decode("utf-8", errors="replace")


class HFTokenizer:
    """A ``tokenizers.Tokenizer`` (trained BPE) or a ``transformers`` tokenizer."""

    def __init__(self, tok, *, eod: int | None, n_tokens: int, fingerprint: str, fast_backend=None):
        self.tok = tok
        self.eod = eod
        self.n_tokens = n_tokens
        self.fingerprint = fingerprint
        self._backend = fast_backend

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        if self._backend is not None:
            return [e.ids for e in self._backend.encode_batch(texts, add_special_tokens=False)]
        return self.tok(texts, add_special_tokens=False, verbose=False)["input_ids"]

    def decode(self, ids: Iterable[int]) -> str:
        return self.tok.decode([int(i) for i in ids])


def train_bpe(train_texts: Iterator[str], vocab_size: int, corpus_key: str) -> HFTokenizer:
    """A byte-level BPE with ``vocab_size`` ids trained on ``train_texts``; cached by key and size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < MIN_BPE_VOCAB:
        raise ValueError(
            f"vocab size {vocab_size} is too small for a byte-level BPE (256 byte symbols + "
            f"end-of-document + merges); use --vocab-size {MIN_BPE_VOCAB} or more (e.g. 2048)"
        )
    key = hashlib.sha256(f"bpe-v1/{corpus_key}/{vocab_size}".encode()).hexdigest()[:20]
    path = cache_root() / "tokenizers" / f"bpe-{vocab_size}-{key}.json"
    if not path.exists():
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=[EOD_TEXT], show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
        tok.train_from_iterator(train_texts, trainer=trainer)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tok.save(str(tmp))
        os.replace(tmp, path)
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    return HFTokenizer(tok, eod=tok.token_to_id(EOD_TEXT), n_tokens=tok.get_vocab_size(),
                       fingerprint=f"bpe/{key}", fast_backend=tok)


def load_model_tokenizer(path: str | Path) -> HFTokenizer:
    """The tokenizer of a local Hugging Face model directory (no network, no remote code)."""
    p = Path(path)
    if not p.is_dir():
        raise ValueError(
            f"tokenizer {str(path)!r} is neither 'byte', 'bpe' nor a local model directory; "
            f"pass --tokenizer byte, bpe, or the path of a directory saved with save_pretrained"
        )
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        tok = AutoTokenizer.from_pretrained(str(p), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"cannot load a tokenizer from {p} ({str(e).splitlines()[0]}); the directory needs the "
            f"tokenizer files written by tokenizer.save_pretrained"
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    h = hashlib.sha256(b"hf-v1")
    for f in sorted(p.iterdir()):
        if f.is_file() and not f.name.endswith(WEIGHT_SUFFIXES):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    backend = getattr(tok, "backend_tokenizer", None) if getattr(tok, "is_fast", False) else None
    return HFTokenizer(tok, eod=tok.eos_token_id, n_tokens=len(tok), fingerprint=f"hf/{h.hexdigest()[:20]}",
                       fast_backend=backend)
