"""myopia: are a transformer's activations optimised for predicting future tokens?

Public API (everything else may change):

* :class:`GradientPolicy` — where gradient may flow in attention (vanilla, myopic,
  horizon h, block horizon c; ``detach="kv"`` or ``"hidden"``).
* :func:`policy_attention` — attention under a policy (reference and fast paths).
* :class:`GPT`, :class:`GPTConfig` — the built-in model.
* :func:`make_task` — synthetic tasks.
* :func:`train`, :class:`TrainConfig` — the one training loop.
* :func:`myopia_gap` — myopic-trained minus vanilla-trained loss over seeds.
"""

__version__ = "0.1.0"

from myopia.attention import policy_attention
from myopia.data import make_task
from myopia.model import GPT, GPTConfig
from myopia.policy import MYOPIC, VANILLA, GradientPolicy
from myopia.train import RunResult, TrainConfig, train

__all__ = [
    "GradientPolicy", "VANILLA", "MYOPIC", "policy_attention", "GPT", "GPTConfig",
    "make_task", "train", "TrainConfig", "RunResult",
]
