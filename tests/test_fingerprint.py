"""Weight fingerprints, read from real model files by the bounded inspection: a copy
under other layer names and another format is identical, a lightly perturbed copy or
one with a re-trained layer is similar, and independently made models are not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader import copymatch, fingerprint
from grader.inspection.static import inspect_model
from grader.settings import Settings


def _cnn(prefix: str, seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(16, 3, activation="relu", name=f"{prefix}conv"),
            keras.layers.SeparableConv2D(32, 3, activation="relu", name=f"{prefix}sep"),
            keras.layers.GlobalAveragePooling2D(name=f"{prefix}pool"),
            keras.layers.Dense(10, name=f"{prefix}dense"),
        ]
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("prints")
    original = _cnn("a_", seed=1)
    paths = {"original": out / "original.keras"}
    original.save(paths["original"])

    renamed = _cnn("b_", seed=2)
    renamed.set_weights(original.get_weights())
    paths["renamed_h5"] = out / "renamed.h5"
    renamed.save(paths["renamed_h5"])

    rng = np.random.default_rng(0)
    noisy = _cnn("c_", seed=3)
    noisy.set_weights(
        [w + rng.normal(0, 0.01 * (w.std() or 1), w.shape) for w in original.get_weights()]
    )
    paths["noisy"] = out / "noisy.keras"
    noisy.save(paths["noisy"])

    retrained = _cnn("d_", seed=4)
    weights = original.get_weights()
    weights[-2] = retrained.get_weights()[-2]  # a new last Dense kernel
    retrained.set_weights(weights)
    paths["one_layer_retrained"] = out / "retrained.keras"
    retrained.save(paths["one_layer_retrained"])

    paths["independent"] = out / "independent.keras"
    _cnn("e_", seed=5).save(paths["independent"])
    return paths


def _prints(path: Path) -> list[dict]:
    return inspect_model(path, Settings()).fingerprint


def test_a_renamed_copy_in_another_format_is_identical(files: dict[str, Path]) -> None:
    a, b = _prints(files["original"]), _prints(files["renamed_h5"])
    assert a and fingerprint.identical(a, b) and fingerprint.similarity(a, b) == 1.0


@pytest.mark.parametrize("variant", ["noisy", "one_layer_retrained"])
def test_near_copies_are_similar(files: dict[str, Path], variant: str) -> None:
    a, b = _prints(files["original"]), _prints(files[variant])
    assert not fingerprint.identical(a, b)
    assert fingerprint.similarity(a, b) >= 0.5
    assert fingerprint.keys(a) & fingerprint.keys(b), "an index key must bring them together"


def test_independent_models_are_not_similar(files: dict[str, Path]) -> None:
    a, b = _prints(files["original"]), _prints(files["independent"])
    assert fingerprint.similarity(a, b) == 0.0


arrays = st.lists(
    st.integers(min_value=32, max_value=400).flatmap(
        lambda n: st.builds(
            lambda seed: np.random.default_rng(seed).normal(size=n).astype(np.float32),
            st.integers(0, 2**32 - 1),
        )
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=30, deadline=None)
@given(arrays, st.randoms(use_true_random=False))
def test_similarity_ignores_order_and_is_symmetric(values: list, rnd) -> None:
    a = fingerprint.fingerprint(values)
    shuffled = list(values)
    rnd.shuffle(shuffled)
    b = fingerprint.fingerprint(shuffled)
    assert fingerprint.identical(a, b) and fingerprint.similarity(a, b) == 1.0
    c = fingerprint.fingerprint([v[::-1].copy() for v in values])
    assert fingerprint.similarity(a, c) == fingerprint.similarity(c, a)


pool = [np.random.default_rng(seed).normal(size=64 + 16 * seed).astype(np.float32)
        for seed in range(5)]  # fmt: skip
classes = st.lists(
    st.tuples(
        st.sampled_from("abc"),  # the student
        st.lists(st.integers(0, len(pool) - 1), min_size=1, max_size=4, unique=True),
    ),
    min_size=2,
    max_size=8,
)


@settings(max_examples=40, deadline=None)
@given(classes)
def test_the_index_finds_every_pair_of_different_students_and_no_other(chosen: list) -> None:
    """find_pairs (candidates from shared index keys only) against comparing every pair."""
    graded = [
        copymatch.Graded(owner, None, fingerprint.fingerprint([pool[i] for i in arrays]))
        for owner, arrays in chosen
    ]
    everything = {
        (i, j): match
        for i in range(len(graded))
        for j in range(i + 1, len(graded))
        if graded[i].owner != graded[j].owner
        and (match := copymatch.compare(None, graded[i].prints, None, graded[j].prints))
    }
    found = copymatch.find_pairs(graded)
    assert {(i, j): match for i, j, match in found} == everything
    assert all(graded[i].owner != graded[j].owner for i, j, _ in found)
    assert [m.similarity for *_, m in found] == sorted((m.similarity for *_, m in found),
                                                       reverse=True)  # fmt: skip


def test_the_same_file_is_a_pair_whatever_its_weights_say() -> None:
    """Files that could not be fingerprinted still pair by their bytes; one student's
    two identical files do not."""
    same, other = "f" * 64, "e" * 64
    found = copymatch.find_pairs(
        [copymatch.Graded(owner, sha, []) for owner, sha in
         (("ann", same), ("ann", same), ("ben", same), ("cy", other))]
    )  # fmt: skip
    assert [(i, j, m.kind, m.similarity) for i, j, m in found] == [
        (0, 2, "identical file", 1.0),
        (1, 2, "identical file", 1.0),
    ]
