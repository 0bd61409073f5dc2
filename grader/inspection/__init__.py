"""Static inspection of uploaded model files: read as data, never executed."""

from grader.inspection.modelfile import ModelFile, read_model_file

__all__ = ["ModelFile", "read_model_file"]
