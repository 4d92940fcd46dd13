"""A `myopia gap` output on a tiny text corpus, in seconds: what explain and report tests read."""

from __future__ import annotations

import random
from pathlib import Path

WORDS = ("the cat sat on a mat while the dog ran to the park and a bird sang in the tree "
         "because every small model learns which word comes next").split()


def word_salad(tmp_path: Path) -> str:
    """30 documents of 60 seeded words: a text too small to learn, enough to train cells on."""
    import numpy as np

    p = tmp_path / "corpus.txt"
    words = "the cat sat on a mat while the dog ran to the park and back again".split()
    rng = np.random.default_rng(0)
    p.write_text("\n\n".join(" ".join(rng.choice(words, 60)) for _ in range(30)))
    return str(p)


def tiny_corpus(path: Path, docs: int = 60, seed: int = 0) -> Path:
    """Paragraphs of seeded word salad with a repeated pattern (enough for train/val/test at T = 16)."""
    rng = random.Random(seed)
    paras = []
    for _ in range(docs):
        words = [rng.choice(WORDS) for _ in range(rng.randint(20, 40))]
        paras.append("the cat sat on the mat. " + " ".join(words) + ".")
    path.write_text("\n\n".join(paras) + "\n")
    return path


def tiny_text_gap(root: Path, *, seeds: int = 1, detach=("kv", "hidden"), steps: int = 30):
    """`myopia_gap` on the tiny corpus (byte tokens, T = 16, a 2-layer d=16 GPT); returns (out dir, result)."""
    from myopia import TrainConfig, myopia_gap

    root.mkdir(parents=True, exist_ok=True)
    corpus = tiny_corpus(root / "corpus.txt")
    train = TrainConfig(steps=steps, batch_size=8, lr=1e-2, warmup_steps=5, eval_every=steps, eval_batches=1,
                        test_batches=2, checkpoint_every=steps)
    out = root / "gap"
    result = myopia_gap({"name": "text", "data": str(corpus), "seq_len": 16},
                        model={"n_layer": 2, "n_head": 2, "n_embd": 16}, train=train, seeds=seeds,
                        detach=list(detach), out_dir=out, workers=1, progress=False)
    return out, result
