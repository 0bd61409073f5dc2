"""Crafted configurations end in a clear "not gradable", fast, without a traceback or growth.

Each case from issue 10 is a regression test: huge and non-finite numbers,
graphs built to make a walker do exponential or quadratic work, weights padded
far past what the configuration needs, and layers whose sizes would exhaust the
sandbox (refused statically, in milliseconds, with the size). A hypothesis fuzz
test mutates real configurations and checks the property "an Architecture or
NotGradable, within a time bound".
"""

from __future__ import annotations

import copy
import json
import os
import time
import zipfile
from pathlib import Path
from typing import Any

import h5py
import hostile
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from testutil import shipped_spec

from grader.errors import NotGradable
from grader.inspection.architecture import Architecture, Limits, analyse
from grader.inspection.static import inspect_model
from grader.pipeline import _cross_check, grade_file
from grader.sandbox import EvaluationResult
from grader.settings import Settings

FAST_S = 3.0  # "in under a few seconds", with room for a loaded CI machine


def _tensor(name: str, shape: list) -> dict:
    history = {"shape": shape, "dtype": "float32", "keras_history": [name, 0, 0]}
    return {"class_name": "__keras_tensor__", "config": history}


def _input(name: str, shape: list) -> dict:
    return {"class_name": "InputLayer", "name": name, "module": "keras.layers",
            "config": {"batch_shape": shape, "name": name}, "inbound_nodes": []}  # fmt: skip


def _layer(cls: str, name: str, config: dict, inputs: list[dict] | None = None) -> dict:
    nodes = [{"args": inputs, "kwargs": {}}] if inputs is not None else []
    return {"class_name": cls, "name": name, "module": "keras.layers",
            "config": {"name": name, **config}, "inbound_nodes": nodes}  # fmt: skip


def _functional(layers: list[dict], out: str, inp: str = "in") -> dict:
    return {"class_name": "Functional", "module": "keras.src.models.functional",
            "config": {"name": "m", "layers": layers, "input_layers": [inp, 0, 0],
                       "output_layers": [out, 0, 0]}}  # fmt: skip


def _sequential(shape: list, *layers: dict) -> dict:
    items = [{"class_name": "InputLayer", "config": {"batch_shape": shape}}]
    items += [{"class_name": cls, "config": cfg} for cls, cfg in layers]
    return {"class_name": "Sequential", "config": {"name": "s", "layers": items}}


def _refused_fast(config: Any, words: str, limits: Limits | None = None) -> str:
    started = time.perf_counter()
    with pytest.raises(NotGradable) as info:
        analyse(config, limits or Limits())
    assert time.perf_counter() - started < FAST_S
    assert words in info.value.reason, info.value.reason
    return info.value.reason


def _raw_keras(tmp_path: Path, config_text: str) -> Path:
    return hostile._keras_with(tmp_path, "crafted.keras", **{"config.json": config_text.encode()})


# --- numbers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "crafted", "words"),
    [('"units": 10', '"units": 1e400', "'units'"),
     ('"batch_shape": [null, 8,', '"batch_shape": [null, 1e400,', "input shape")],
    ids=["units", "batch_shape"],
)  # fmt: skip
def test_1e400_is_refused_from_the_file(field: str, crafted: str, words: str, tmp_path) -> None:
    template = json.loads(hostile._template_members()["config.json"])
    text = json.dumps(template).replace(field, crafted)
    assert "1e400" in text
    with pytest.raises(NotGradable, match=words):
        inspect_model(_raw_keras(tmp_path, text), Settings())


@pytest.mark.parametrize(
    "conv",
    [{"filters": 10**40, "kernel_size": 3}, {"filters": 2, "kernel_size": [10**30, 3]},
     {"filters": 2, "kernel_size": 3, "strides": -(10**20)}, {"filters": 2.5, "kernel_size": 3},
     {"filters": 2, "kernel_size": "3"}, {"filters": True, "kernel_size": 3},
     {"filters": float("inf"), "kernel_size": 3}, {"filters": float("nan"), "kernel_size": 3}],
)  # fmt: skip
def test_hostile_numbers_are_refused_naming_the_field(conv: dict) -> None:
    config = _sequential([None, 8, 8, 3], ("Conv2D", conv))
    reason = _refused_fast(config, "Layer 'Conv2D'")
    assert "field" in reason


def test_huge_integers_in_shape_arithmetic_are_refused() -> None:
    config = _sequential([None, 2**31 - 1, 2**31 - 1, 3], ("Flatten", {}), ("Dense", {"units": 4}))
    _refused_fast(config, "dimension over")


# --- work ----------------------------------------------------------------------


def _shared_submodel_tower(levels: int, calls: int) -> dict:
    """Each level's model calls the previous level's model ``calls`` times in a chain."""
    inner: dict = _functional(
        [_input("in", [None, 4]), _layer("Dense", "d", {"units": 4}, [_tensor("in", [None, 4])])],
        "d",
    )
    for level in range(levels):
        layer = {**inner, "name": f"sub{level}", "inbound_nodes": []}
        layer["config"] = {**inner["config"], "name": f"sub{level}"}
        previous = ("in", 0)
        for _ in range(calls):
            layer["inbound_nodes"].append(
                {"args": [{**_tensor(previous[0], [None, 4]),
                           "config": {"shape": [None, 4], "dtype": "float32",
                                      "keras_history": [previous[0], previous[1], 0]}}],
                 "kwargs": {}})  # fmt: skip
            previous = (f"sub{level}", len(layer["inbound_nodes"]) - 1)
        outer = _functional([_input("in", [None, 4]), layer], f"sub{level}")
        outer["config"]["output_layers"] = [f"sub{level}", calls, 0]  # Keras 3: node 0 is its own
        inner = outer
    return inner


def test_shared_submodel_called_many_times_at_many_depths_is_linear() -> None:
    config = _shared_submodel_tower(levels=9, calls=10)
    assert len(json.dumps(config)) < 60_000  # small file, 10**9 calls if walked naively
    started = time.perf_counter()
    arch = analyse(config)
    assert time.perf_counter() - started < FAST_S
    assert arch.total_params == 20  # one Dense(4) on 4 features, shared by every call


def test_a_million_plain_numbers_in_a_call_are_refused_fast() -> None:
    args = [_tensor("in", [None, 4]), list(range(1_000_000))]
    config = _functional([_input("in", [None, 4]), {**_layer("Dense", "d", {"units": 2}),
                          "inbound_nodes": [{"args": args, "kwargs": {}}]}], "d")  # fmt: skip
    _refused_fast(config, "arguments")


def test_thousands_of_layers_are_refused_by_the_layer_cap() -> None:
    layers = [("Dense", {"units": 2}) for _ in range(1999)]
    _refused_fast(_sequential([None, 2], *layers), "1,500 layers")


def test_duplicate_layer_names_are_refused() -> None:
    config = _functional(
        [_input("in", [None, 4]), _layer("Dense", "d", {"units": 2}, [_tensor("in", [None, 4])]),
         _layer("Dense", "d", {"units": 3}, [_tensor("in", [None, 4])])], "d")  # fmt: skip
    _refused_fast(config, "both named")


# --- sizes the sandbox would discover the hard way -------------------------------


def test_upsampling_by_1000_is_refused_statically_with_its_size() -> None:
    config = _sequential([None, 32, 32, 3], ("UpSampling2D", {"size": [1000, 1000]}))
    _refused_fast(config, "MiB tensor inside the model")


def test_resizing_to_20000_squared_is_refused_statically() -> None:
    config = _sequential([None, 32, 32, 3], ("Resizing", {"height": 20000, "width": 20000}))
    _refused_fast(config, "per image")


def test_build_config_declaring_a_bigger_input_is_refused() -> None:
    config = _sequential([None, 10], ("Dense", {"units": 61}))
    config["config"]["layers"][1]["build_config"] = {"input_shape": [None, 10_000_000]}
    _refused_fast(config, "build shape")


def test_rescaling_constants_count_toward_the_parameter_cap() -> None:
    scale = [[[1 / 255] * 3] * 32] * 32
    config = _sequential([None, 32, 32, 3], ("Rescaling", {"scale": scale, "offset": 0.0}))
    assert analyse(config).resources.constants == 32 * 32 * 3
    _refused_fast(config, "3,072 constants", Limits(max_params=1000))


def test_padded_weights_are_refused_before_they_are_unpacked(tmp_path: Path) -> None:
    """A weights member that unpacks to hundreds of MB (ratio under the bomb cap) for a
    model of a few hundred parameters: refused from its header, the grader does not grow."""
    members = hostile._template_members()
    path = tmp_path / "padded.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.json", members["metadata.json"])
        zf.writestr("config.json", members["config.json"])
        with zf.open("model.weights.h5", "w", force_zip64=True) as out:
            out.write(members["model.weights.h5"])
            noise = os.urandom(8 * 1024)
            for _ in range(256):  # 256 MiB, ~2 MiB compressed
                out.write(noise + bytes((1 << 20) - len(noise)))
    assert path.stat().st_size < 10 * 2**20
    before = _rss_mib()
    started = time.perf_counter()
    with pytest.raises(NotGradable, match="far more than the parameters"):
        inspect_model(path, Settings())
    assert time.perf_counter() - started < FAST_S
    assert _rss_mib() - before < 100  # the grading process never held the weights


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_inspection_that_overstays_its_time_limit_is_cut_off(tmp_path: Path) -> None:
    """The bounded child: a 0 s budget cannot finish, and says so."""
    path = hostile.plain_keras(tmp_path)
    with pytest.raises(NotGradable, match="took longer than"):
        inspect_model(path, Settings(inspect_timeout_seconds=0.0))


# --- fuzz ----------------------------------------------------------------------------

HOSTILE_VALUES = [None, -1, 0, 10**15, 10**400, 1e300, float("inf"), float("nan"), -0.5, 2.5,
                  "x", "", [], {}, [None], [1, 2], {"class_name": "__tuple__"}, True,
                  {"class_name": "Lambda"},
                  {"class_name": "__keras_tensor__", "config": {}}]  # fmt: skip


def _config_of(build) -> dict:
    import keras

    return json.loads(keras.Model(*build(keras)).to_json())


def _residual(keras):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    y = keras.layers.SeparableConv2D(8, 3, padding="same", depth_multiplier=2)(x)
    x = keras.layers.BatchNormalization()(x + y * 0.5)
    x = keras.layers.MaxPooling2D()(x)[:, 1:]
    x = keras.layers.Reshape((-1, 8))(x)
    x = keras.layers.MultiHeadAttention(2, 4)(x, x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return inputs, keras.layers.Dense(10, activation="softmax")(x)


@pytest.fixture(scope="module")
def real_config() -> dict:
    return _config_of(_residual)


def _paths(tree: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(tree, dict):
        for key, value in tree.items():
            out += _paths(value, (*path, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            out += _paths(value, (*path, index))
    return out


def _mutate(config: dict, data: st.DataObject) -> dict:
    config = copy.deepcopy(config)
    paths = _paths(config)[1:]
    for _ in range(data.draw(st.integers(1, 4))):
        path = data.draw(st.sampled_from(paths))
        parent = config
        try:
            for step in path[:-1]:
                parent = parent[step]
            current = parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue
        how = data.draw(st.sampled_from(["replace", "delete", "swap", "duplicate"]))
        if how == "replace":
            parent[path[-1]] = data.draw(st.sampled_from(HOSTILE_VALUES))
        elif how == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif how == "swap":  # lists <-> dicts
            if isinstance(current, list):
                parent[path[-1]] = {str(i): v for i, v in enumerate(current)}
            elif isinstance(current, dict):
                parent[path[-1]] = list(current.values())
        elif how == "duplicate" and isinstance(parent, list):
            parent.extend(copy.deepcopy(parent))
    return config


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_mutated_configs_give_an_architecture_or_a_reason_in_bounded_time(real_config, data):
    config = _mutate(real_config, data)
    started = time.perf_counter()
    try:
        result = analyse(config)
    except NotGradable as exc:
        assert exc.reason and "Traceback" not in exc.reason
    else:
        assert isinstance(result, Architecture)
        assert all(isinstance(d, int | None) for d in result.output_shape)
        assert 0 <= result.total_params <= Limits().max_params
    assert time.perf_counter() - started < FAST_S


# --- the cross-check with what Keras built ----------------------------------------


def _built(arch: Architecture, **changes: Any) -> EvaluationResult:
    """What the sandbox would report for ``arch``, with ``changes`` (a tampered file)."""
    layers = [{"type": x.type, "params": x.params} for x in arch.layers]
    return EvaluationResult(**{"layers": layers, "total_params": arch.total_params,
                               "trainable_params": arch.trainable_params, "input_shape": None,
                               "predictions": None, **changes})  # fmt: skip


def test_cross_check_refuses_a_built_model_that_differs_from_the_config() -> None:
    arch = analyse(_config_of(_residual))
    _cross_check(arch, _built(arch).layers, _built(arch).total_params)  # agrees: no refusal
    with pytest.raises(NotGradable, match="inconsistent"):
        _cross_check(arch, _built(arch).layers, arch.total_params + 1)
    swapped = [{"type": "Dense", "params": 0}, *_built(arch).layers[1:]]
    with pytest.raises(NotGradable, match="inconsistent"):
        _cross_check(arch, swapped, arch.total_params)


def test_weights_that_do_not_fit_the_config_are_not_gradable(tmp_path: Path) -> None:
    """Weights for a wider Dense than the config declares: Keras refuses to load them."""
    from grader.sandbox import sandbox_status

    if not sandbox_status()[0]:
        pytest.skip(f"no sandbox on this machine: {sandbox_status()[1]}")

    def widen(f: Any) -> None:
        for name in list(_dataset_names(f)):
            if "dense" in name and f[name].ndim == 2:
                data = f[name][()]
                del f[name]
                f[name] = np.zeros((data.shape[0], data.shape[1] + 5), data.dtype)

    path = hostile._keras_with(tmp_path, "widened.keras",
                               **{"model.weights.h5": hostile._edited_weights(widen)})  # fmt: skip
    report = grade_file(path, shipped_spec("day097-cifar10").model_copy(update={"input_shape":
                        [8, 8, 3], "evaluation": None}), settings=Settings())  # fmt: skip
    assert report.status == "not_gradable", report
    assert report.reason


def _dataset_names(f: Any) -> list[str]:
    names: list[str] = []
    f.visit(lambda name: names.append(name) if hasattr(f[name], "shape") else None)
    return names


# --- found by attacking the inspector ----------------------------------------------


def _nested_backbone_config(keras, size: int):
    backbone_in = keras.Input((None, None, 3))
    x = backbone_in
    for _ in range(6):
        x = keras.layers.Conv2D(256, 3, padding="same")(x)
    backbone = keras.Model(backbone_in, x)
    inputs = keras.Input((size, size, 3))
    outputs = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    return json.loads(keras.Model(inputs, outputs).to_json())


def test_a_nested_model_is_costed_on_the_tensor_it_is_called_on() -> None:
    import keras

    _refused_fast(_nested_backbone_config(keras, 1024), "MiB tensor inside the model")
    assert analyse(_nested_backbone_config(keras, 16)).output_shape == (None, 256)


def test_backbone_without_input_shape_then_flatten_is_inferred_like_keras() -> None:
    import keras

    base = keras.applications.MobileNetV2(include_top=False, weights=None)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Flatten()(base(inputs))
    model = keras.Model(inputs, keras.layers.Dense(5)(x))
    assert analyse(json.loads(model.to_json())).total_params == model.count_params()


def test_reshaping_images_into_the_batch_axis_is_refused() -> None:
    import keras

    inputs = keras.Input((8, 8, 4))
    x = keras.ops.reshape(inputs, (-1, 4))  # 64 rows per image: work hidden from the caps
    config = json.loads(keras.Model(inputs, keras.layers.Dense(2)(x)).to_json())
    _refused_fast(config, "batch axis")


def test_a_reshape_to_a_million_dimensions_is_refused_fast() -> None:
    config = _sequential([None, 4], ("Reshape", {"target_shape": [1] * 1_000_000}))
    _refused_fast(config, "target_shape")


def test_expand_dims_with_300000_axes_is_refused_fast() -> None:
    op = {"class_name": "ExpandDims", "name": "e", "module": "keras.src.ops.numpy",
          "config": {"name": "e", "axis": [1] * 300_000},
          "inbound_nodes": [{"args": [_tensor("in", [None, 4])], "kwargs": {}}]}  # fmt: skip
    _refused_fast(_functional([_input("in", [None, 4]), op], "e"), "axis")


def test_a_lora_rank_counts_toward_the_parameter_cap() -> None:
    config = _sequential([None, 1], ("Dense", {"units": 1, "lora_rank": 30_000_000}))
    _refused_fast(config, "parameters")


def test_keras1_files_are_refused_with_how_to_save_again(tmp_path: Path) -> None:
    path = hostile.plain_h5(tmp_path)
    with h5py.File(path, "r+") as handle:
        handle.attrs["keras_version"] = "1.2.2"
    with pytest.raises(NotGradable) as info:
        inspect_model(path, Settings())
    assert "Keras 1.2.2" in info.value.reason and "model.save('model.h5')" in info.value.reason
