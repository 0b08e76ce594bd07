"""A conformance check every runtime passes, in the spirit of sklearn's estimator checks.

>>> from modelyard.runtimes.sklearn import SklearnRuntime        # doctest: +SKIP
>>> check_runtime(SklearnRuntime(), fitted_model, X)              # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from modelyard.core.signature import Signature
from modelyard.runtimes.base import LoadOptions, Predictor, Runtime, SaveOptions
from modelyard.runtimes.catalog import RuntimeCatalog

__all__ = ["check_runtime"]


def check_runtime(
    runtime: Runtime,
    model: object,
    sample: Any,
    *,
    expected: Any = None,
    expected_proba: Any = None,
    options: SaveOptions | None = None,
    atol: float = 1e-6,
    catalog: RuntimeCatalog | None = None,
) -> Predictor:
    """Save ``model`` with ``runtime``, load it back, and check it behaves like the original.

    ``expected`` defaults to ``model.predict(sample)``; ``expected_proba`` to
    ``model.predict_proba(sample)`` when the model has it. Returns the loaded predictor.
    Raises AssertionError naming the broken rule.
    """
    assert isinstance(runtime.format, str), "format must be a str"
    assert runtime.format, "format must not be empty"
    assert isinstance(runtime.priority, int), "priority must be an int"
    assert runtime.can_save(model), f"{runtime.format}.can_save() rejects its own model"
    if catalog is not None:
        found = catalog.for_object(model).format
        assert found == runtime.format, f"the catalog picks {found!r} for this model"
    if expected is None:
        expected = _call(model, "predict", sample)
    if expected_proba is None and callable(getattr(model, "predict_proba", None)):
        expected_proba = _call(model, "predict_proba", sample)

    options = options or SaveOptions(sample_input=sample)
    signature = Signature.infer(sample)
    prepared = signature.validate_input(sample)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        saved = runtime.save(model, directory, options)
        assert any(directory.iterdir()), "save() wrote no files"
        orjson.dumps(saved.meta)  # meta must be JSON-serialisable: it goes into the registry
        for _ in range(2):  # loading is repeatable and does not consume the files
            predictor = runtime.load(directory, saved.meta, LoadOptions())
            assert isinstance(predictor, Predictor), "load() must return a Predictor"
            got = np.asarray(predictor.predict(prepared))
            _assert_close(got, np.asarray(expected), atol, "predict")
            if expected_proba is not None:
                proba = getattr(predictor, "predict_proba", None)
                assert callable(proba), "the model has predict_proba but the predictor does not"
                _assert_close(np.asarray(proba(prepared)), np.asarray(expected_proba), atol,
                              "predict_proba")
    return predictor


def _call(model: object, method: str, sample: Any) -> Any:
    fn: Callable[[Any], Any] = getattr(model, method)
    return fn(sample)


def _assert_close(got: np.ndarray, want: np.ndarray, atol: float, what: str) -> None:
    got, want = np.squeeze(got), np.squeeze(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    if want.dtype.kind in "fc":
        assert np.allclose(got, want, atol=atol, rtol=1e-5), f"{what}: values differ"
    else:
        assert np.array_equal(got, want), f"{what}: values differ"
