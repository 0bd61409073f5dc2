"""Auto-grader for Keras CNN homework: inspect, sandbox, evaluate, report."""

__version__ = "0.1.0"
