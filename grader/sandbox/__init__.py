"""Run an untrusted Keras model file in a sandbox; get back its layer table and predictions.

Public API: :class:`SandboxLimits`, :class:`EvaluationResult`, :func:`sandbox_status`,
:func:`evaluate_model`, :func:`run_sandboxed`, :class:`WarmEvaluator` (a pre-imported
sandbox for workers). How the confinement is built is in
:mod:`grader.sandbox.policy`; what runs inside is :mod:`grader.sandbox.launcher`.
"""

from grader.sandbox.policy import SandboxLimits
from grader.sandbox.runner import EvaluationResult, evaluate_model, run_sandboxed, sandbox_status
from grader.sandbox.warm import WarmEvaluator

__all__ = [
    "EvaluationResult",
    "SandboxLimits",
    "WarmEvaluator",
    "evaluate_model",
    "run_sandboxed",
    "sandbox_status",
]
