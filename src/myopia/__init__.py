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
* :func:`local_myopia_bonus` — L(θ0′) - L(φ*): φ re-optimised for the present with θ0's past
  frozen, against θ0′, θ0 trained on (vanilla) with the same budget.
* :func:`output_myopia` — output-side myopia: are predictions shaped by their consequences?
  (self-fulfilling bias, free-running drift, a policy-gradient positive control; `myopia consequences`).
* :func:`explain`, :func:`load_gap_pair`, :func:`load_model_pair` — one prompt token by token
  under a vanilla and a myopic model (the `myopia explain` command).
* :func:`future_token_probes` — the `myopia probe` measure: future-token and task-feature probes
  at every layer, each with a causal test (the mechanism, probes and residual edits that any
  experiment can reuse, is :mod:`myopia.probes`).
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
from myopia.measures.consequences import output_myopia
from myopia.explain import explain, load_gap_pair, load_model_pair
from myopia.measures.probe import future_token_probes
from myopia.measures.model_series import model_series

__all__ = [
    "GradientPolicy", "VANILLA", "MYOPIC", "policy_attention", "GPT", "GPTConfig",
    "make_task", "train", "TrainConfig", "RunResult", "myopia_gap",
    "offset_gradients", "decompose_gradients", "horizon_curve",
    "local_myopia_bonus", "output_myopia", "explain", "load_gap_pair", "load_model_pair", "future_token_probes", "model_series",
]
