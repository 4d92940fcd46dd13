"""Next-token prediction on a text corpus: split by document, tokenize once, pack, batch.

Pipeline (each step cached, so a second run only opens files):

1. documents of the corpus (:mod:`myopia.data.corpus`) in their fixed order;
2. split by *document* into train / val / test: a permutation seeded by the task seed
   picks ``round(val_fraction * n)`` and ``round(test_fraction * n)`` documents (at least
   one each); no document contributes to two splits;
3. tokenize (:mod:`myopia.data.tokenization`), streaming the documents in chunks; each
   split is one flat array of ids with an end-of-document id after every document, written
   to ``$MYOPIA_CACHE/text/<key>/<split>.bin`` and read back as a ``numpy.memmap`` — the
   corpus is never held in memory. The key hashes the corpus fingerprint, the tokenizer,
   the seed and the split fractions (not ``seq_len``: packing is free);
4. pack into contexts of ``seq_len + 1`` ids (input = first ``seq_len``, target = last
   ``seq_len``). Held-out splits use fixed contexts ``[k T, k T + T]``, batch ``i`` taking
   contexts ``i B .. i B + B - 1`` (wrapping around). Training walks epochs: each epoch
   has its own context order and start offset in ``[0, T)``, both seeded by
   ``(seed, stream, epoch)``, so batch ``index`` is a pure function of the task and the run
   seed, and vanilla and myopic runs with one seed see identical batches.

The trivial reference predictor is the unigram distribution of the train split (add-one
smoothed): the loss of a model that ignores the context entirely.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from myopia.data.corpus import BUILTIN, Corpus, open_corpus
from myopia.data.tokenization import ByteTokenizer, cache_root, load_model_tokenizer, train_bpe

SPLITS = ("train", "val", "test")
CACHE_VERSION = "v2"  # v2: document start offsets stored
DEFAULT_BPE_VOCAB = 2048
CHUNK_DOCS = 256


def _rng(*parts) -> np.random.Generator:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


@dataclass
class TextTask:
    """Next-token prediction on a text corpus (see the module docstring)."""

    name: str = "text"
    data: str | None = None  # corpus: None = built-in stdlib docstrings; stdlib-source; a file/dir path; hf:NAME
    tokenizer: str = "byte"  # byte, bpe (trained on the train split), or a local HF model directory
    vocab_size: int | None = None  # bpe: vocabulary size (default 2048); byte: 257; model dir: its tokenizer's
    seq_len: int = 64  # tokens per context
    field: str = "text"  # text field of .jsonl records / column of .parquet files and datasets
    seed: int = 0  # document split and data order
    val_fraction: float = 0.05  # share of documents held out for validation
    test_fraction: float = 0.05  # share of documents held out for the test loss
    doc_start: bool = False  # every context starts at a document's first token (one context per document)

    regression = False

    def __post_init__(self) -> None:
        if self.seq_len < 1:
            raise ValueError(f"text task: seq_len must be >= 1, got {self.seq_len}")
        for f in ("val_fraction", "test_fraction"):
            if not 0 < getattr(self, f) < 0.5:
                raise ValueError(f"text task: {f} must be in (0, 0.5), got {getattr(self, f)}")
        if self.data is not None and str(self.data) not in BUILTIN and not str(self.data).startswith("hf:"):
            self.data = str(Path(self.data).expanduser().resolve())
        self._tok = None
        self._perm_cache: dict = {}
        corpus = open_corpus(self.data, self.field)
        self.corpus_name = corpus.name
        self.vocab_size = self._resolve_vocab()
        self._dir = self._load_or_build(corpus)
        meta = json.loads((self._dir / "meta.json").read_text())
        self.meta = meta
        self._ids = {
            s: np.memmap(self._dir / f"{s}.bin", dtype=meta["dtype"], mode="r", shape=(meta["tokens"][s],))
            for s in SPLITS
        }
        T = self.seq_len
        if self.doc_start:
            # (n_contexts,) offset of each context's first id: the documents followed by >= T more ids
            self._doc_starts = {}
            for s in SPLITS:
                starts = np.load(self._dir / f"{s}.starts.npy")
                self._doc_starts[s] = starts[starts + T + 1 <= len(self._ids[s])]
            self.n_contexts = {s: len(self._doc_starts[s]) for s in SPLITS}
        else:
            # train contexts fit any epoch offset in [0, T); held-out contexts start at offset 0
            self.n_contexts = {s: (len(self._ids[s]) - T if s == "train" else len(self._ids[s]) - 1) // T
                               for s in SPLITS}
        for s in SPLITS:
            if self.n_contexts[s] < 1 and self.doc_start:
                raise ValueError(
                    f"corpus {self.corpus_name} is too short for seq_len={T} with --doc-start: no document of its "
                    f"{s} split ({meta['documents'][s]} documents, {len(self._ids[s])} tokens) starts {T + 1} or "
                    f"more tokens before the split's end; use a larger corpus or a shorter --seq-len"
                )
            if self.n_contexts[s] < 1:
                need = 2 * T if s == "train" else T + 1
                raise ValueError(
                    f"corpus {self.corpus_name} is too short for seq_len={T}: its {s} split has "
                    f"{len(self._ids[s])} tokens ({meta['documents'][s]} documents), fewer than the {need} one "
                    f"context needs; use a larger corpus or a shorter --seq-len"
                )
        counts = np.load(self._dir / "unigram.npy").astype(np.float64)
        counts = np.pad(counts, (0, max(0, self.vocab_size - len(counts)))) + 1.0  # add-one smoothing
        self._unigram_nll = torch.from_numpy(-np.log(counts / counts.sum())).float()

    # ------------------------------------------------------------------ interface
    def to_dict(self) -> dict:
        return asdict(self)

    def batch(self, split: str, index: int, batch_size: int, stream: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids x (B, T) and next tokens y (B, T)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        T, n = self.seq_len, self.n_contexts[split]
        pos = index * batch_size + np.arange(batch_size)
        if split == "train":
            epochs = pos // n
            starts = np.empty(batch_size, dtype=np.int64)
            for e in np.unique(epochs):
                order, offset = self._epoch(int(stream), int(e))
                sel = epochs == e
                starts[sel] = self._context_start(split, order[pos[sel] % n], offset)
        else:
            starts = self._context_start(split, pos % n, 0)
        window = np.asarray(self._ids[split][starts[:, None] + np.arange(T + 1)], dtype=np.int64)  # (B, T+1)
        w = torch.from_numpy(window)
        return w[:, :-1], w[:, 1:]

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-position cross-entropy (B, T) of logits (B, T, V)."""
        B, T = y.shape
        return F.cross_entropy(out.reshape(B * T, -1).float(), y.reshape(-1), reduction="none").view(B, T)

    def trivial_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-position loss (B, T) of the train-split unigram distribution."""
        return self._unigram_nll[y]

    def decode(self, ids) -> str:
        return self.tokenizer_obj.decode(ids)

    def summary(self) -> dict:
        """Sizes of the splits, for results and messages."""
        return {"corpus": self.corpus_name, "documents": self.meta["documents"], "tokens": self.meta["tokens"],
                "contexts": self.n_contexts, "vocab_size": self.vocab_size, "cache": str(self._dir)}

    # ------------------------------------------------------------------ internals
    def _context_start(self, split: str, k: np.ndarray, offset: int) -> np.ndarray:
        """Offsets of contexts ``k`` of ``split``: document starts, or packed from ``offset``."""
        return self._doc_starts[split][k] if self.doc_start else offset + k * self.seq_len

    @property
    def tokenizer_obj(self):
        if self._tok is None:
            if self.tokenizer == "byte":
                self._tok = ByteTokenizer()
            elif self.tokenizer == "bpe":
                corpus = open_corpus(self.data, self.field)
                self._tok = train_bpe(self._train_texts(corpus), self.vocab_size, self._split_key(corpus))
            else:
                self._tok = load_model_tokenizer(self.tokenizer)
        return self._tok

    def _resolve_vocab(self) -> int:
        if self.tokenizer == "byte":
            if self.vocab_size not in (None, ByteTokenizer.n_tokens):
                raise ValueError(
                    f"vocab size {self.vocab_size} does not apply to the byte tokenizer (always 257 ids); "
                    f"leave --vocab-size out or use --tokenizer bpe"
                )
            return ByteTokenizer.n_tokens
        if self.tokenizer == "bpe":
            from myopia.data.tokenization import MIN_BPE_VOCAB

            v = DEFAULT_BPE_VOCAB if self.vocab_size is None else int(self.vocab_size)
            if v < MIN_BPE_VOCAB:
                raise ValueError(
                    f"vocab size {v} is too small for a byte-level BPE (256 byte symbols + end-of-document "
                    f"+ merges); use --vocab-size {MIN_BPE_VOCAB} or more (e.g. {DEFAULT_BPE_VOCAB})"
                )
            return v
        n = self.tokenizer_obj.n_tokens
        if self.vocab_size is not None and self.vocab_size < n:
            raise ValueError(
                f"vocab size {self.vocab_size} is smaller than the {n} ids of tokenizer {self.tokenizer}; "
                f"leave --vocab-size out (or give the model's embedding size)"
            )
        return n if self.vocab_size is None else int(self.vocab_size)

    def _split_key(self, corpus: Corpus) -> str:
        return f"{corpus.fingerprint}/seed{self.seed}/{self.val_fraction}/{self.test_fraction}"

    def _tokenizer_key(self) -> str:
        if self.tokenizer in ("byte", "bpe"):
            return f"{self.tokenizer}/{self.vocab_size}"
        return self.tokenizer_obj.fingerprint

    def _assignment(self, corpus: Corpus) -> np.ndarray:
        """Split of every document: 0 train, 1 val, 2 test."""
        n = sum(1 for _ in corpus.documents())
        if n < 3:
            raise ValueError(
                f"corpus {corpus.name} has {n} non-empty document(s); the split by document needs at least 3 "
                f"(one each for train/val/test) — add text, or separate paragraphs by blank lines"
            )
        n_val = max(1, round(self.val_fraction * n))
        n_test = max(1, round(self.test_fraction * n))
        if n_val + n_test >= n:
            n_val, n_test = 1, 1
        perm = _rng("split", self.seed, self.val_fraction, self.test_fraction).permutation(n)
        assign = np.zeros(n, dtype=np.int8)
        assign[perm[:n_val]] = 1
        assign[perm[n_val:n_val + n_test]] = 2
        return assign

    def _train_texts(self, corpus: Corpus):
        # a generator: nothing is read (not even the split assignment) unless a BPE is trained
        assign = self._assignment(corpus)
        yield from (d for d, a in zip(corpus.documents(), assign) if a == 0)

    def _load_or_build(self, corpus: Corpus) -> Path:
        key = hashlib.sha256(
            json.dumps([CACHE_VERSION, corpus.fingerprint, self._tokenizer_key(), self.seed,
                        self.val_fraction, self.test_fraction]).encode()
        ).hexdigest()[:20]
        final = cache_root() / "text" / key
        if (final / "meta.json").exists():
            return final
        assign = self._assignment(corpus)
        tok = self.tokenizer_obj
        if tok.n_tokens > self.vocab_size:
            raise ValueError(f"tokenizer has {tok.n_tokens} ids but vocab_size is {self.vocab_size}; raise --vocab-size")
        dtype = np.uint16 if self.vocab_size <= 65536 else np.uint32
        tmp = final.with_name(f"{key}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        files = {s: open(tmp / f"{s}.bin", "wb") for s in SPLITS}
        tokens = dict.fromkeys(SPLITS, 0)
        docs = dict.fromkeys(SPLITS, 0)
        doc_starts: dict[str, list[int]] = {s: [] for s in SPLITS}  # offset of each document's first id
        unigram = np.zeros(self.vocab_size, dtype=np.int64)
        eod = [] if tok.eod is None else [tok.eod]

        def flush(chunk: list[str], which: list[int]) -> None:
            train_ids = []
            for ids, a in zip(tok.encode_batch(chunk), which):
                arr = np.concatenate([np.asarray(ids, dtype=dtype), np.asarray(eod, dtype=dtype)])
                s = SPLITS[a]
                doc_starts[s].append(tokens[s])
                arr.tofile(files[s])
                tokens[s] += len(arr)
                docs[s] += 1
                if a == 0:
                    train_ids.append(arr)
            if train_ids:
                unigram[:] += np.bincount(np.concatenate(train_ids), minlength=self.vocab_size)[: self.vocab_size]

        try:
            chunk, which = [], []
            for doc, a in zip(corpus.documents(), assign):
                chunk.append(doc)
                which.append(int(a))
                if len(chunk) == CHUNK_DOCS:
                    flush(chunk, which)
                    chunk, which = [], []
            if chunk:
                flush(chunk, which)
        except BaseException:
            for f in files.values():
                f.close()
            shutil.rmtree(tmp, ignore_errors=True)  # a failed build leaves nothing behind
            raise
        for f in files.values():
            f.close()
        np.save(tmp / "unigram.npy", unigram)
        for s in SPLITS:
            np.save(tmp / f"{s}.starts.npy", np.asarray(doc_starts[s], dtype=np.int64))
        meta = {"corpus": corpus.name, "fingerprint": corpus.fingerprint, "tokenizer": self._tokenizer_key(),
                "dtype": np.dtype(dtype).name, "tokens": tokens, "documents": docs, "seed": self.seed}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            os.replace(tmp, final)
        except OSError:  # another process finished the same cache first
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    def _epoch(self, stream: int, epoch: int) -> tuple[np.ndarray, int]:
        """Context order and start offset of one training epoch."""
        key = (stream, epoch)
        if key not in self._perm_cache:
            if len(self._perm_cache) > 4:
                self._perm_cache.clear()
            rng = _rng("train", self.seed, stream, epoch)
            order, offset = rng.permutation(self.n_contexts["train"]), int(rng.integers(self.seq_len))
            self._perm_cache[key] = (order, 0 if self.doc_start else offset)
        return self._perm_cache[key]
