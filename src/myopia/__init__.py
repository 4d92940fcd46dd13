"""myopia: are a transformer's activations optimised for predicting future tokens?

Public API (everything else may change):

* :class:`GradientPolicy` — where gradient may flow in attention (vanilla, myopic,
  horizon h, block horizon c; ``detach="kv"`` or ``"hidden"``).
* :func:`policy_attention` — attention under a policy (reference and fast paths).
* :class:`GPT`, :class:`GPTConfig` — the built-in model.
* :func:`make_task` — synthetic tasks.
* :func:`train`, :class:`TrainConfig` — the one training loop.
* :func:`myopia_gap` — myopic-trained minus vanilla-trained loss over seeds.
* :func:`offset_gradients` — where a batch's gradient comes from: G(0), future, G(tau)
  (the mechanism, with the exact split and the per-offset profile, is :mod:`myopia.gradients`).
* :func:`decompose_gradients`, :func:`horizon_curve` — the `myopia decompose` and
  `myopia horizon` measures.
* :func:`local_myopia_bonus` — L(θ0) - L(φ*): φ re-optimised for the present, θ0's past frozen.
* :func:`model_series` — the gap along a series of pretrained HF checkpoints (``myopia sweep --models``).
* :mod:`myopia.hf` — any Hugging Face causal LM under a policy (``myopia.hf.load``).
"""

__version__ = "0.1.0"

from myopia.attention import policy_attention
from myopia.data import make_task
from myopia.model import GPT, GPTConfig
from myopia.policy import MYOPIC, VANILLA, GradientPolicy
from myopia.train import RunResult, TrainConfig, train
from myopia.measures.bonus import local_myopia_bonus
from myopia.gradients import offset_gradients
from myopia.measures.decompose import decompose_gradients
from myopia.measures.gap import myopia_gap
from myopia.measures.horizon import horizon_curve
from myopia.measures.model_series import model_series

__all__ = [
    "GradientPolicy", "VANILLA", "MYOPIC", "policy_attention", "GPT", "GPTConfig",
    "make_task", "train", "TrainConfig", "RunResult", "myopia_gap",
    "offset_gradients", "decompose_gradients", "horizon_curve",
    "local_myopia_bonus", "model_series",
]
