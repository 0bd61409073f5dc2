"""The grading pipeline: every entry point (CLI, web, queue) grades through here.

Order matters for safety and speed: the file is inspected as data first (no
TensorFlow, well under a second), so hostile and malformed files are refused
before anything loads them; only then is the model loaded and run, inside the
sandbox, and the predictions it returns are scored here, where the labels are.

The three phases (inspect_file, evaluate, build_report) are public so that a job
runner can compose them with its own bookkeeping in between; grade_file is their
composition for callers that just want a report.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from grader import __version__, featuremaps, holdout, probes
from grader.checks import fmt_shape, max_score, run_checks, score_checks
from grader.data import TestSet, combined_images, find_test_set
from grader.diagnosis import OutputFacts, diagnose, output_facts
from grader.errors import ConfigurationError, NotGradable
from grader.inspection.architecture import Architecture
from grader.inspection.static import Inspection, inspect_model
from grader.integrity import judge
from grader.metrics import score_predictions
from grader.report import (
    CIFAR10_CLASSES,
    Diagnosis,
    FeatureMaps,
    HoldoutResult,
    LayerInfo,
    Metrics,
    ModelInfo,
    ProbeResults,
    Report,
)
from grader.sandbox import EvaluationResult, SandboxLimits, evaluate_model
from grader.settings import Settings, get_settings
from grader.spec import AssignmentSpec

PhaseCallback = Callable[[str], None]
# Same signature as grader.sandbox.evaluate_model; a warm worker passes its own.
Evaluator = Callable[..., EvaluationResult]


class _Clock:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - start, 4)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sha256_if_regular(path: Path, max_bytes: int) -> str | None:
    """The file's identity, also for refused files (batch re-runs key on it);
    never through a link, never for a folder or an oversized file."""
    try:
        info = path.lstat()
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
        return None
    return file_sha256(path)


def inspect_file(model_path: Path, spec: AssignmentSpec, settings: Settings) -> Inspection:
    """Static, TensorFlow-free checks: format, allow-list, caps, and the assignment's input."""
    inspection = inspect_model(model_path, settings)
    arch = inspection.architecture
    expected = [None, *spec.input_shape]
    actual = list(arch.input_shape)
    fits = len(actual) == len(expected) and all(
        a is None or e is None or a == e for a, e in zip(actual, expected, strict=True)
    )
    if not fits:
        raise NotGradable(
            f"Your model's input is {fmt_shape(actual)}, but this assignment feeds images of "
            f"shape {fmt_shape(expected)}. Set keras.Input(shape={tuple(spec.input_shape)})."
        )
    return inspection


def require_loader(loader: str) -> None:
    """A Keras 2 file needs tf-keras installed; without it that is the operator's problem."""
    if loader == "tf_keras" and importlib.util.find_spec("tf_keras") is None:
        raise ConfigurationError(
            "This file was written by Keras 2 (tf.keras), which this installation cannot load: "
            "install it with pip install --no-deps 'tf-keras~=2.21.0'."
        )


def batch_size_for(arch: Architecture, settings: Settings) -> int:
    """Images per predict call: the configured batch, smaller when the model's largest
    tensor would not fit a quarter of the sandbox's memory (a few are live at once)."""
    per_image = max(arch.resources.peak_activation_bytes, 1) * 4
    fits = settings.sandbox_memory_bytes // 4 // per_image
    return max(1, min(settings.predict_batch_size, fits))


def model_info(arch: Architecture, fmt: str | None) -> ModelInfo:
    """The report's view of the architecture: every layer, with its formulas explained."""
    from grader.explain import explain
    from grader.inspection.architecture import Layer
    from grader.report import LayerFormula

    def formula(layer: Layer) -> LayerFormula | None:
        found = explain(layer)
        return None if found is None else LayerFormula(**found.as_dict())

    return ModelInfo(
        format=fmt,
        total_params=arch.total_params,
        trainable_params=arch.trainable_params,
        input_shape=list(arch.input_shape),
        output_shape=list(arch.output_shape),
        layers=[
            LayerInfo(
                name=layer.name,
                type=layer.type,
                path=layer.path,
                output_shape=list(layer.output_shape),
                params=layer.params,
                trainable_params=layer.trainable_params,
                attributes=layer.attributes,
                formula=formula(layer),
            )
            for layer in arch.layers
        ],
    )


def _cross_check(arch: Architecture, layers: list[dict], total: int) -> None:
    """What Keras built must be what the file declared, layer by layer; a difference
    means the file was tampered with (or the inference is wrong: never graded blind)."""
    if total != arch.total_params:
        raise NotGradable(
            f"The model Keras built has {total:,} parameters, but its stored configuration "
            f"declares {arch.total_params:,}. The file is inconsistent and cannot be graded."
        )
    built = [(x["type"], x.get("params")) for x in layers if x["type"] != "InputLayer"]
    declared = [(x.type, x.params) for x in arch.layers]
    if built != declared:
        raise NotGradable(
            "The layers Keras built differ from the file's stored configuration; the file is "
            "inconsistent and cannot be graded."
        )


@dataclasses.dataclass
class Evaluation:
    """What the sandbox run gave back, scored on the trusted side."""

    result: EvaluationResult
    metrics: Metrics | None  # None when the spec has no evaluation block
    timings: dict[str, float]  # the sandbox's phases, then "score"
    probes: ProbeResults | None = None  # never part of the grade
    output_max: float | None = None  # the largest output magnitude (saturation)
    holdout: HoldoutResult | None = None  # the instructor's second held-out set
    outputs: OutputFacts | None = None  # output width, non-finite rows (diagnosis)
    feature_maps: FeatureMaps | None = None  # feedback only


class EvaluationRefused(NotGradable):
    """NotGradable found after the sandbox ran (an inconsistent model, bad predictions):
    carries what the run gave back, whose device and timings the refusal report keeps."""

    def __init__(self, reason: str, evaluation: Evaluation) -> None:
        super().__init__(reason)
        self.evaluation = evaluation


def evaluate(
    model_path: Path,
    inspection: Inspection,
    spec: AssignmentSpec,
    *,
    settings: Settings,
    trust: bool = False,
    test_set: TestSet | None = None,
    evaluator: Evaluator = evaluate_model,
    gpu: int | None = None,
    on_phase: PhaseCallback | None = None,
) -> Evaluation:
    """Run the model in isolation and score its predictions against the labels.

    Raises NotGradable (EvaluationRefused once the sandbox has run) for the
    student's file, ConfigurationError when the test set or Keras 2 is missing.
    ``on_phase`` is called with "scoring" before the predictions are scored.
    """
    block = spec.evaluation
    if block is not None and test_set is None:
        test_set = find_test_set(None, settings.cifar10)
    require_loader(inspection.loader)
    limits = SandboxLimits.from_settings(settings)
    if block is not None:
        limits = dataclasses.replace(limits, wall_seconds=block.time_limit_seconds)
    arch = inspection.architecture
    requested = probes.plan(block.preprocessing) if block is not None else ()
    images = test_set.images_path if block is not None and test_set is not None else None
    held_out, problem = None, ""
    if block is not None and test_set is not None and block.holdout is not None:
        held_out, problem = holdout.prepare(block.holdout, settings.assignments_dir)
        if held_out is not None:
            images = combined_images(test_set, held_out)
    feature = featuremaps.input_images(spec, test_set, settings)
    result = evaluator(
        model_path,
        images,
        scale=block.preprocessing.scale if block else 1.0,
        offset=block.preprocessing.offset if block else 0.0,
        limits=limits,
        trust=trust,
        gpu=gpu,
        batch_size=batch_size_for(arch, settings),
        loader=inspection.loader,
        probes=requested,
        probe_images=probes.PROBE_IMAGES if requested else 0,
        feature_images=feature.path if feature is not None else None,
    )
    evaluation = Evaluation(
        result=result,
        metrics=None,
        timings={k: round(v, 4) for k, v in result.timings.items()},
    )
    clock = _Clock()
    try:
        _cross_check(arch, result.layers, result.total_params)
        evaluation.feature_maps = featuremaps.render(feature, result.feature_maps, arch)
        if block is not None and test_set is not None:
            if on_phase is not None:
                on_phase("scoring")
            with clock.phase("score"):
                assert result.predictions is not None
                n_test = len(test_set.labels)
                predictions = result.predictions[:n_test]
                invalid = result.invalid_rows
                facts = output_facts(
                    predictions, None if invalid is None else invalid[:n_test], len(CIFAR10_CLASSES)
                )
                evaluation.outputs = facts
                evaluation.metrics = score_predictions(
                    predictions, test_set.labels, invalid=None if facts.clean else facts.invalid
                )
                if facts.clean:  # probes of NaN or misshapen outputs would mean nothing
                    evaluation.probes = probes.score_probes(
                        result.probes, requested, predictions, test_set.labels
                    )
                evaluation.output_max = facts.max_abs
                if block.holdout is not None:
                    if held_out is not None and not facts.clean:
                        problem = "the model's outputs are not one score per class"
                    evaluation.holdout = (
                        holdout.score(
                            block.holdout,
                            held_out.source,
                            result.predictions[n_test:],
                            held_out.labels,
                            evaluation.metrics.accuracy,
                        )
                        if held_out is not None and facts.clean
                        else holdout.unavailable(block.holdout, problem)
                    )
    except NotGradable as exc:
        evaluation.timings.update(clock.timings)
        raise EvaluationRefused(exc.reason, evaluation) from exc
    evaluation.timings.update(clock.timings)
    return evaluation


def build_report(
    spec: AssignmentSpec,
    inspection: Inspection,
    evaluation: Evaluation,
    *,
    file_sha256: str | None = None,
    timings: dict[str, float] | None = None,
) -> Report:
    """The verdict: every check the spec asks for, scored by the rubric.

    ``timings`` default to the evaluation's (the sandbox's phases and "score").
    """
    arch = inspection.architecture
    checks = run_checks(spec, arch, evaluation.metrics)
    total, maximum, breakdown = score_checks(spec, checks, evaluation.metrics)
    passed = all(c.passed for c in checks)
    found: list[Diagnosis] = []
    verdict = None
    if spec.evaluation is not None and evaluation.metrics is not None:
        found = diagnose(
            spec.evaluation, arch, evaluation.metrics, evaluation.probes, evaluation.output_max,
            outputs=evaluation.outputs,
        )  # fmt: skip
        verdict = judge(spec.integrity, evaluation.probes, evaluation.holdout)
        if verdict is not None and verdict.flagged and verdict.action == "zero":
            total, passed = 0.0, False
    return Report(
        status="passed" if passed else "failed",
        assignment=spec.id,
        grader_version=__version__,
        score=total,
        max_score=maximum,
        score_breakdown=breakdown,
        checks=checks,
        model=model_info(arch, inspection.format),
        metrics=evaluation.metrics,
        probes=evaluation.probes,
        diagnosis=found,
        integrity=verdict,
        feature_maps=evaluation.feature_maps,
        timings=dict(evaluation.timings if timings is None else timings),
        file_sha256=file_sha256,
        device=evaluation.result.device,
        backend=evaluation.result.backend,
    )


def grade_file(
    model_path: Path,
    spec: AssignmentSpec,
    *,
    settings: Settings | None = None,
    trust: bool = False,
    test_set: TestSet | None = None,
    on_phase: PhaseCallback | None = None,
    evaluator: Evaluator = evaluate_model,
    gpu: int | None = None,
) -> Report:
    """Inspect, evaluate in a sandbox and score one model file.

    Never raises for a bad file: the verdict is in ``Report.status``. Raises
    ConfigurationError (no test set) and SandboxUnavailable (no isolation and
    not trusted), which are the operator's problems, not the student's.
    ``on_phase`` is called with "inspecting", "evaluating", "scoring".
    ``evaluator`` runs the model in isolation (default: a fresh sandbox);
    ``gpu`` is the index of the GPU it may use (None: CPU only).
    """
    settings = settings or get_settings()
    notify = on_phase or (lambda _phase: None)
    clock = _Clock()
    started = time.perf_counter()
    sha: str | None = None
    model: ModelInfo | None = None
    try:
        notify("inspecting")
        with clock.phase("inspect"):
            sha = _sha256_if_regular(model_path, settings.max_upload_bytes)
            inspection = inspect_file(model_path, spec, settings)
        model = model_info(inspection.architecture, inspection.format)
        notify("evaluating")
        evaluation = evaluate(
            model_path, inspection, spec, settings=settings, trust=trust, test_set=test_set,
            evaluator=evaluator, gpu=gpu, on_phase=notify,
        )  # fmt: skip
        clock.timings.update(evaluation.timings)
        report = build_report(spec, inspection, evaluation, file_sha256=sha)
    except EvaluationRefused as exc:
        clock.timings.update(exc.evaluation.timings)
        report = refusal_report(spec, exc.reason, file_sha256=sha, model=model,
                                device=exc.evaluation.result.device,
                                backend=exc.evaluation.result.backend)  # fmt: skip
    except NotGradable as exc:
        report = refusal_report(spec, exc.reason, file_sha256=sha, model=model)
    report.timings = {**clock.timings, "total": round(time.perf_counter() - started, 4)}
    return report


def refusal_report(
    spec: AssignmentSpec,
    reason: str,
    *,
    file_sha256: str | None = None,
    model: ModelInfo | None = None,
    device: str | None = None,
    timings: dict[str, float] | None = None,
    backend: str | None = None,
) -> Report:
    """The "not gradable" report: no checks, no points (out of what a graded file could
    earn), the reason in plain words."""
    return Report(
        status="not_gradable",
        reason=reason,
        assignment=spec.id,
        grader_version=__version__,
        score=0.0,
        max_score=max_score(spec),
        file_sha256=file_sha256,
        model=model or ModelInfo(),
        device=device,
        backend=backend,
        timings=timings or {},
    )
