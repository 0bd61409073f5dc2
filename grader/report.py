"""The grading report: the one contract shared by the CLI, the web service and the queue.

``Report.model_dump(mode="json")`` is the documented ``--json`` output; keep
field names stable, add rather than rename.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["passed", "failed", "not_gradable"]
# The built-in check groups. Fields hold a plain str, so that a registered check type
# (grader.checks) can bring a group of its own, with points from the rubric field of that name.
Group = Literal["architecture", "parameters", "accuracy"]

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


class Check(BaseModel):
    name: str
    group: str
    passed: bool
    expected: Any = None
    actual: Any = None
    message: str = ""


class LayerFormula(BaseModel):
    """How a layer's numbers are computed, with its own numbers (grader.explain); a field
    is None where it is not explained."""

    params: str | None = None  # "(3·3·3 + 1)·32 = 896"
    output: str | None = None  # "valid, stride 1: 224 − 3 + 1 = 222", per spatial axis
    rule: str | None = None  # the general form: "(kernel_h·kernel_w·channels_in + 1)·filters"


class LayerInfo(BaseModel):
    name: str
    type: str
    output_shape: list[int | None] | None = None
    params: int | None = None
    trainable_params: int | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    path: str = ""
    formula: LayerFormula | None = None


class ModelInfo(BaseModel):
    format: str | None = None
    total_params: int | None = None
    trainable_params: int | None = None
    input_shape: list[int | None] | None = None
    output_shape: list[int | None] | None = None
    layers: list[LayerInfo] = Field(default_factory=list)


class Metrics(BaseModel):
    accuracy: float
    num_images: int
    per_class_accuracy: dict[str, float]
    confusion_matrix: list[list[int]]


class ProbeResults(BaseModel):
    """Accuracy on the first ``images`` test images: the model's own, and under each probe."""

    images: int
    accuracy: float
    variants: dict[str, float] = Field(default_factory=dict)


class Diagnosis(BaseModel):
    """Why an accuracy is low, in a plain sentence; ``code`` is stable (see README)."""

    code: str
    message: str
    evidence: dict[str, Any] = Field(default_factory=dict)


class HoldoutResult(BaseModel):
    """Accuracy on the instructor's second held-out set, beside the test accuracy."""

    source: str
    images: int = 0
    accuracy: float | None = None
    test_accuracy: float | None = None
    gap: float | None = None  # test accuracy minus held-out accuracy
    max_gap: float
    flagged: bool = False
    problem: str = ""  # why there is no figure (the set could not be read)


class IntegrityResult(BaseModel):
    """The generalisation probe's verdict (a large drop on flipped or shifted images),
    and the held-out set's when the spec has one; ``flagged`` if either flags."""

    flagged: bool
    action: str  # "flag" (the instructor is told) or "zero" (the score is set to 0)
    max_drop: float
    # The probe's worst change; None when the probes gave nothing (the holdout alone).
    drop: float | None = None
    variant: str | None = None
    accuracy: float | None = None
    variant_accuracy: float | None = None
    message: str = ""
    holdout: HoldoutResult | None = None


class FeatureMapLayer(BaseModel):
    """One convolution or pooling layer's activations on each feature-map image: a PNG
    grid of its first channels (a data URI), with the layer's real output size."""

    name: str
    type: str
    shape: list[int]  # the layer's output (height, width, channels), as Keras gives it
    channels_shown: int
    tile: list[int]  # (height, width) of each channel's picture, after averaging down
    images: list[str]  # one "data:image/png;base64,..." grid per input image


class FeatureMaps(BaseModel):
    """What the model's layers make of a few fixed images (feedback, never the grade)."""

    source: str  # where the images come from, in words
    inputs: list[str]  # the images as given to the model, as PNG data URIs
    layers: list[FeatureMapLayer] = Field(default_factory=list)


class ScorePart(BaseModel):
    group: str
    points: float
    max_points: float
    detail: str


class Report(BaseModel):
    status: Status
    reason: str | None = None
    assignment: str
    score: float = 0.0
    max_score: float = 0.0
    score_breakdown: list[ScorePart] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list)
    model: ModelInfo = Field(default_factory=ModelInfo)
    metrics: Metrics | None = None
    probes: ProbeResults | None = None
    diagnosis: list[Diagnosis] = Field(default_factory=list)
    integrity: IntegrityResult | None = None
    feature_maps: FeatureMaps | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    file_sha256: str | None = None
    device: str | None = None
    backend: str | None = None  # the Keras backend the sandbox ran (tensorflow, jax, torch)
    grader_version: str = ""

    @property
    def exit_code(self) -> int:
        """0 passed, 1 failed, 2 not gradable: the CLI's documented codes."""
        return {"passed": 0, "failed": 1, "not_gradable": 2}[self.status]
