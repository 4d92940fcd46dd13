"""The text data pipeline on small local files: sources, tokenizers, split, packing, cache, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from myopia.data import make_task
from myopia.data.corpus import module_docstrings, stdlib_docstrings
from myopia.data.text import TextTask

DOCS = [f"Document number {i:03d} talks about topic {i % 7}. " * (3 + i % 4) for i in range(40)]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MYOPIA_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)
    return tmp_path / "cache"


def write_formats(root) -> dict:
    """The same 40 documents as .txt paragraphs, a directory, .jsonl, .parquet and a saved dataset."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = {}
    paths["txt"] = root / "corpus.txt"
    paths["txt"].write_text("\n\n".join(DOCS) + "\n")
    d = root / "dir"
    d.mkdir()
    for i, doc in enumerate(DOCS):
        (d / f"{i:03d}.txt").write_text(doc)
    paths["dir"] = d
    paths["jsonl"] = root / "corpus.jsonl"
    paths["jsonl"].write_text("".join(json.dumps({"id": i, "body": doc}) + "\n" for i, doc in enumerate(DOCS)))
    paths["parquet"] = root / "corpus.parquet"
    pq.write_table(pa.table({"body": DOCS, "id": list(range(len(DOCS)))}), paths["parquet"])
    paths["dataset"] = root / "saved"
    datasets.Dataset.from_dict({"body": DOCS}).save_to_disk(str(paths["dataset"]))
    return paths


def all_ids(task: TextTask) -> dict:
    return {s: np.asarray(task._ids[s]).copy() for s in ("train", "val", "test")}


def test_every_source_format_gives_the_same_token_streams(tmp_path):
    paths = write_formats(tmp_path)
    streams = {}
    for kind, p in paths.items():
        field = "text" if kind in ("txt", "dir") else "body"
        task = make_task("text", data=str(p), field=field, seq_len=16)
        assert task.meta["documents"] == {"train": 36, "val": 2, "test": 2}
        streams[kind] = all_ids(task)
    ref = streams.pop("txt")
    for kind, s in streams.items():
        for split in ref:
            assert np.array_equal(ref[split], s[split]), (kind, split)


def test_split_is_by_document_and_covers_every_document(tmp_path):
    paths = write_formats(tmp_path)
    task = make_task("text", data=str(paths["jsonl"]), field="body", seq_len=16, seed=3)
    seen = {}
    for split, ids in all_ids(task).items():
        text = task.decode(ids.tolist())
        seen[split] = {i for i in range(len(DOCS)) if f"number {i:03d}" in text}
    assert seen["train"].isdisjoint(seen["val"]) and seen["train"].isdisjoint(seen["test"])
    assert seen["val"].isdisjoint(seen["test"])
    assert seen["train"] | seen["val"] | seen["test"] == set(range(len(DOCS)))
    other = make_task("text", data=str(paths["jsonl"]), field="body", seq_len=16, seed=4)
    assert not np.array_equal(all_ids(other)["test"], all_ids(task)["test"])  # the seed picks the split


def test_batches_are_packed_next_token_pairs_and_pure_functions_of_their_index(tmp_path):
    paths = write_formats(tmp_path)
    task = make_task("text", data=str(paths["txt"]), seq_len=16)
    x, y = task.batch("train", 5, 8, stream=1)
    assert x.shape == y.shape == (8, 16) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    x2, y2 = task.batch("train", 5, 8, stream=1)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(task.batch("train", 5, 8, stream=2)[0], x)  # another run seed, another order
    assert not torch.equal(task.batch("train", 6, 8, stream=1)[0], x)
    # held-out batches ignore the stream and tile the split's contexts in order
    xv, _ = task.batch("val", 0, 2, stream=7)
    assert torch.equal(xv, task.batch("val", 0, 2)[0])
    flat = torch.from_numpy(np.asarray(task._ids["val"], dtype=np.int64))
    assert torch.equal(xv[1], flat[16:32])
    # one training epoch visits every context exactly once, from the epoch's start offset
    n = task.n_contexts["train"]
    order, offset = task._epoch(0, 0)
    assert sorted(order.tolist()) == list(range(n)) and 0 <= offset < 16
    train = torch.from_numpy(np.asarray(task._ids["train"], dtype=np.int64))
    for i in (0, 1, n - 1):
        xb, yb = task.batch("train", i, 1, stream=0)
        start = offset + int(order[i]) * 16
        assert torch.equal(xb[0], train[start:start + 16]) and torch.equal(yb[0], train[start + 1:start + 17])
    assert not torch.equal(task.batch("train", n, 1, stream=0)[0], task.batch("train", 0, 1, stream=0)[0])


def test_doc_start_contexts_begin_at_a_document_first_token(tmp_path):
    """With doc_start every context of every split, in every epoch, starts at a document's first
    token. Each document starts with "Q" + its number and "Q" occurs nowhere else, so the first
    bytes of a context name the document it starts; without doc_start most contexts do not."""
    docs = [f"Q{i:03d} " + f"words of document {i} about topic {i % 5}; " * (1 + i % 6) for i in range(60)]
    path = tmp_path / "q.txt"
    path.write_text("\n\n".join(docs) + "\n")
    T = 24
    task = make_task("text", data=str(path), seq_len=T, doc_start=True)
    n = task.n_contexts
    for split in ("train", "val", "test"):
        text = task.decode(np.asarray(task._ids[split]).tolist())
        in_split = {i for i in range(len(docs)) if f"Q{i:03d} " in text}
        batches = 2 * n[split] if split == "train" else n[split]  # two training epochs, every held-out context
        seen = set()
        for b in range(batches):
            x, y = task.batch(split, b, 1, stream=3)
            first = task.decode(x[0, :5].tolist())
            assert first[0] == "Q" and int(first[1:4]) in in_split, (split, b, first)
            assert torch.equal(x[0, 1:], y[0, :-1])
            seen.add(int(first[1:4]))
        assert len(seen) == n[split]  # one context per document (those not too near the split's end)
        assert n[split] >= len(in_split) - 2
    assert task.to_dict()["doc_start"] is True
    packed = make_task("text", data=str(path), seq_len=T)
    firsts = [packed.decode(packed.batch("train", b, 1)[0][0, :1].tolist()) for b in range(40)]
    assert sum(f == "Q" for f in firsts) < 10  # the check can fail: packed contexts start anywhere
    short = tmp_path / "short.txt"
    short.write_text("\n\n".join(["a" * 30, "b" * 30] + ["c" * 5] * 20) + "\n")
    with pytest.raises(ValueError, match="too short for seq_len=64 with --doc-start"):
        make_task("text", data=str(short), seq_len=64, doc_start=True)


def test_cached_tokens_equal_a_fresh_build_and_are_reused(tmp_path, cache, monkeypatch):
    paths = write_formats(tmp_path)
    fresh = make_task("text", data=str(paths["jsonl"]), field="body", seq_len=16)
    before = all_ids(fresh)

    def no_rebuild(self, corpus):
        raise AssertionError("cache was rebuilt")

    monkeypatch.setattr(TextTask, "_assignment", no_rebuild)
    again = make_task(**fresh.to_dict())  # the to_dict round trip, served from the cache
    for split, ids in all_ids(again).items():
        assert np.array_equal(ids, before[split])
    assert torch.equal(again.batch("train", 3, 4, stream=2)[0], fresh.batch("train", 3, 4, stream=2)[0])


def test_trivial_loss_is_the_smoothed_train_unigram(tmp_path):
    paths = write_formats(tmp_path)
    task = make_task("text", data=str(paths["txt"]), seq_len=16)
    counts = np.bincount(np.asarray(task._ids["train"]), minlength=task.vocab_size) + 1.0
    x, y = task.batch("test", 0, 4)
    expected = -np.log(counts[y.numpy()] / counts.sum())
    assert np.allclose(task.trivial_loss(x, y).numpy(), expected, atol=1e-5)
    logits = torch.zeros(4, 16, task.vocab_size)
    assert torch.allclose(task.loss(logits, y), torch.full((4, 16), math.log(task.vocab_size)))


def test_bpe_is_trained_on_the_corpus_cached_and_round_trips(tmp_path, cache):
    paths = write_formats(tmp_path)
    task = make_task("text", data=str(paths["txt"]), tokenizer="bpe", vocab_size=300, seq_len=8)
    assert task.vocab_size == 300
    assert len(list((cache / "tokenizers").glob("bpe-300-*.json"))) == 1
    ids = task._ids["train"]
    assert ids.max() < 300 and len(ids) < 0.8 * sum(len(d) for d in DOCS)  # merges compress the bytes
    text = task.decode(np.asarray(task._ids["val"]).tolist())
    assert "Document number" in text
    with pytest.raises(ValueError, match="too small.*--vocab-size 258"):
        make_task("text", data=str(paths["txt"]), tokenizer="bpe", vocab_size=100)


def test_model_directory_tokenizer(tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    paths = write_formats(tmp_path)
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(DOCS, trainers.BpeTrainer(vocab_size=320, special_tokens=["<eos>"], show_progress=False,
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    model_dir = tmp_path / "model"
    PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<eos>").save_pretrained(str(model_dir))
    task = make_task("text", data=str(paths["txt"]), tokenizer=str(model_dir), seq_len=8)
    assert task.vocab_size == raw.get_vocab_size()
    train = np.asarray(task._ids["train"])
    assert (train == raw.token_to_id("<eos>")).sum() == 36  # one end-of-document per train document
    assert "Document number" in task.decode(train[:40].tolist())
    with pytest.raises(ValueError, match="neither 'byte', 'bpe' nor a local model directory"):
        make_task("text", data=str(paths["txt"]), tokenizer=str(tmp_path / "missing"))


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "dataset"])
def test_unknown_field_names_the_available_ones(tmp_path, kind):
    paths = write_formats(tmp_path)
    with pytest.raises(ValueError, match=r"no (field|column) 'txt'.*body.*--field"):
        make_task("text", data=str(paths[kind]), field="txt")


def test_bad_corpora_get_one_clear_error(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ValueError, match="0 non-empty document.*at least 3"):
        make_task("text", data=str(empty))
    short = tmp_path / "short.txt"
    short.write_text("one\n\ntwo\n\nthree\n\nfour\n")
    with pytest.raises(ValueError, match="too short for seq_len=64.*shorter --seq-len"):
        make_task("text", data=str(short))
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"ok\n\n\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="not UTF-8 text"):
        make_task("text", data=str(binary))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        make_task("text", data=str(tmp_path / "nope.txt"))
    with pytest.raises(ValueError, match="does not apply to the byte tokenizer"):
        make_task("text", data=str(short), vocab_size=1000)
    with pytest.raises(ValueError, match="does not take window"):
        make_task("text", window=3)


def test_stdlib_docstrings_in_source_order_without_tests(tmp_path):
    root = tmp_path / "lib"
    (root / "pkg").mkdir(parents=True)
    (root / "test").mkdir()
    (root / "b.py").write_text('"""Module b."""\ndef f():\n    """F doc."""\nclass C:\n    """C doc."""\n    def m(self):\n        """M doc."""\n')
    (root / "a.py").write_text('"""Module a."""\n')
    (root / "pkg" / "__init__.py").write_text('x = 1\n')
    (root / "test" / "t.py").write_text('"""Never."""\n')
    (root / "broken.py").write_text('def (:\n')
    assert module_docstrings((root / "b.py").read_bytes()) == "Module b.\n\nF doc.\n\nC doc.\n\nM doc."
    corpus = stdlib_docstrings(root)
    assert list(corpus.documents()) == ["Module a.", "Module b.\n\nF doc.\n\nC doc.\n\nM doc."]
    assert list(stdlib_docstrings(root).documents()) == ["Module a.", "Module b.\n\nF doc.\n\nC doc.\n\nM doc."]


def test_gap_on_text_reports_per_position_and_token_gaps(tmp_path):
    from myopia.measures.gap import myopia_gap
    from myopia.train import TrainConfig

    paths = write_formats(tmp_path)
    train = TrainConfig(steps=6, batch_size=4, eval_every=3, eval_batches=1, test_batches=2, warmup_steps=1)
    r = myopia_gap({"name": "text", "data": str(paths["txt"]), "seq_len": 16},
                   model={"kind": "gpt", "n_layer": 1, "n_head": 2, "n_embd": 16}, train=train, seeds=1,
                   out_dir=tmp_path / "gap", workers=1, progress=False)
    saved = json.loads((tmp_path / "gap" / "results.json").read_text())
    assert len(saved["per_position_gap"]) == 16
    assert saved["task"]["name"] == "text" and saved["task"]["vocab_size"] == 257
    tg = saved["token_gaps"]
    assert tg["largest"] and tg["largest"][0]["gap"] >= tg["largest"][-1]["gap"]
    row = tg["largest"][0]
    assert row["count"] >= tg["min_count"]
    assert row["gap"] == pytest.approx(row["myopic_loss"] - row["vanilla_loss"])
    assert r.trivial_loss > 0


def test_an_edited_corpus_is_tokenized_again(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("\n\n".join(DOCS))
    first = all_ids(make_task("text", data=str(p), seq_len=16))
    p.write_text("\n\n".join(d.replace("topic", "SUBJECT") for d in DOCS))
    second = make_task("text", data=str(p), seq_len=16)
    assert not np.array_equal(first["train"], all_ids(second)["train"])
    assert "SUBJECT" in second.decode(np.asarray(second._ids["train"][:400]).tolist())
