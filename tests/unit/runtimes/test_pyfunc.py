"""The pyfunc runtime: user classes stored by reference, with artifacts and code paths."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pyfunc_models import InputKind, NeedsArguments, ThresholdModel

from modelyard.errors import InvalidInputError, UnsupportedModelError
from modelyard.runtimes.base import LoadOptions, SaveOptions
from modelyard.runtimes.catalog import RuntimeCatalog
from modelyard.runtimes.onnx import OnnxRuntime
from modelyard.runtimes.pyfunc import PyfuncRuntime
from modelyard.runtimes.sklearn import SklearnRuntime
from modelyard.testing.conformance import check_runtime


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"threshold": 1.5}))
    return path


@pytest.fixture
def sample() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])


def _expected(data: Any) -> tuple[np.ndarray, np.ndarray]:
    reference = ThresholdModel()
    reference.threshold = 1.5
    return reference.predict(data), reference.predict_proba(data)


@pytest.mark.parametrize("as_frame", [True, False], ids=["frame", "array"])
def test_threshold_model_conforms(config: Path, sample: pd.DataFrame, as_frame: bool) -> None:
    data = sample if as_frame else sample.to_numpy()
    expected, expected_proba = _expected(data)
    predictor = check_runtime(
        PyfuncRuntime(),
        ThresholdModel(),
        data,
        expected=expected,
        expected_proba=expected_proba,
        options=SaveOptions(artifacts={"config": str(config)}),
        catalog=RuntimeCatalog([SklearnRuntime(), OnnxRuntime(), PyfuncRuntime()]),
    )
    assert callable(getattr(predictor, "predict_proba", None))


def test_artifacts_are_stored_and_passed_to_load(
    config: Path, sample: pd.DataFrame, tmp_path: Path
) -> None:
    folder = tmp_path / "vocab"
    folder.mkdir()
    (folder / "words.txt").write_text("a\nb\n")
    stored = tmp_path / "stored"
    stored.mkdir()
    options = SaveOptions(artifacts={"config": str(config), "vocab": str(folder)})
    saved = PyfuncRuntime().save(ThresholdModel(), stored, options)
    assert saved.meta == {
        "class": "pyfunc_models:ThresholdModel",
        "artifacts": {"config": "artifacts/config/config.json", "vocab": "artifacts/vocab"},
        "code": [],
        "has_proba": True,
    }
    config.unlink()  # loading must use the stored copy
    predictor = PyfuncRuntime().load(stored, saved.meta, LoadOptions())
    assert predictor.model.model_dir == str(stored.resolve())
    assert (stored / "artifacts/vocab/words.txt").read_text() == "a\nb\n"
    np.testing.assert_array_equal(predictor.predict(sample.to_numpy()), _expected(sample)[0])


@pytest.mark.parametrize(
    ("data", "kind"),
    [({"a": np.array([1.0, 2.0])}, "DataFrame"), (np.ones((2, 1)), "ndarray")],
    ids=["columns", "tensor"],
)
def test_tables_arrive_as_dataframes(data: Any, kind: str, tmp_path: Path) -> None:
    saved = PyfuncRuntime().save(InputKind(), tmp_path, SaveOptions())
    predictor = PyfuncRuntime().load(tmp_path, saved.meta, LoadOptions())
    assert predictor.predict(data).tolist() == [kind, kind]
    assert not hasattr(predictor, "predict_proba")


PLUGIN = "yard_plugin_model"
HELPERS = "yard_plugin_helpers"


@pytest.fixture
def clean_imports() -> Iterator[None]:
    """Undo what importing the plugin does to this process, whatever the test's outcome."""
    saved_path = sys.path[:]
    yield
    sys.path[:] = saved_path
    for name in list(sys.modules):
        if name.split(".")[0] in (PLUGIN, HELPERS):
            del sys.modules[name]


@pytest.mark.usefixtures("clean_imports")
def test_code_paths_make_the_class_importable(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / HELPERS).mkdir(parents=True)
    (source / HELPERS / "__init__.py").write_text("def double(x):\n    return x * 2\n")
    (source / f"{PLUGIN}.py").write_text(
        textwrap.dedent(f"""
        import numpy as np
        from {HELPERS} import double

        class PluginModel:
            def load(self, context):
                self.offset = 1.0

            def predict(self, data):
                return double(np.asarray(data)[:, 0]) + self.offset
        """)
    )
    sys.path.insert(0, str(source))
    plugin = __import__(PLUGIN)
    stored = tmp_path / "stored"
    stored.mkdir()
    options = SaveOptions(code_paths=(str(source / f"{PLUGIN}.py"), str(source / HELPERS)))
    saved = PyfuncRuntime().save(plugin.PluginModel(), stored, options)
    assert saved.meta["class"] == f"{PLUGIN}:PluginModel"
    assert saved.meta["code"] == [f"{PLUGIN}.py", HELPERS]

    # Forget the original files: only the stored copies under code/ remain.
    sys.path.remove(str(source))
    del sys.modules[PLUGIN], sys.modules[HELPERS]
    shutil.rmtree(source)

    predictor = PyfuncRuntime().load(stored, saved.meta, LoadOptions())
    assert Path(sys.modules[PLUGIN].__file__ or "").parent == (stored / "code").resolve()
    np.testing.assert_array_equal(predictor.predict(np.array([[1.0], [2.0]])), [3.0, 5.0])


def test_class_from_main_is_refused(tmp_path: Path) -> None:
    scripted = type("Scripted", (ThresholdModel,), {"__module__": "__main__"})
    with pytest.raises(UnsupportedModelError, match="defined in __main__") as info:
        PyfuncRuntime().save(scripted(), tmp_path, SaveOptions())
    assert "code_paths" in (info.value.hint or "")


def test_class_defined_in_a_function_is_refused(tmp_path: Path) -> None:
    class Local:
        def load(self, context: Any) -> None:
            pass

        def predict(self, data: Any) -> Any:
            return data

    with pytest.raises(UnsupportedModelError, match="inside a function"):
        PyfuncRuntime().save(Local(), tmp_path, SaveOptions())


def test_class_needing_arguments_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedModelError, match=r"needs the arguments \['threshold'\]"):
        PyfuncRuntime().save(NeedsArguments(0.5), tmp_path, SaveOptions())


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("yard_no_such_module:Model", "module 'yard_no_such_module' cannot be imported"),
        ("pyfunc_models:Missing", "has no class 'Missing'"),
    ],
    ids=["module", "class"],
)
def test_unimportable_class_names_what_is_missing(
    reference: str, message: str, tmp_path: Path
) -> None:
    meta = {"class": reference, "artifacts": {}, "code": []}
    with pytest.raises(UnsupportedModelError, match=message):
        PyfuncRuntime().load(tmp_path, meta, LoadOptions())


@pytest.mark.parametrize(
    ("artifacts", "code_paths", "message"),
    [
        ({"config": "does/not/exist.json"}, (), "does not exist"),
        ({"../escape": "config.json"}, (), "artifact name '../escape'"),
        ({}, ("notes.txt",), "not a .py file or a package folder"),
    ],
    ids=["missing-artifact", "bad-name", "bad-code-path"],
)
def test_bad_options_are_refused(
    artifacts: dict[str, str],
    code_paths: tuple[str, ...],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("")
    stored = tmp_path / "stored"
    stored.mkdir()
    options = SaveOptions(artifacts=artifacts, code_paths=code_paths)
    with pytest.raises(InvalidInputError, match=message):
        PyfuncRuntime().save(ThresholdModel(), stored, options)


def test_detection(tmp_path: Path) -> None:
    runtime = PyfuncRuntime()
    assert runtime.can_save(ThresholdModel())
    assert not runtime.can_save(ThresholdModel)  # the class itself, not an instance
    assert not runtime.can_save(object())
    assert not runtime.can_save_path(tmp_path)
    with pytest.raises(UnsupportedModelError, match="cannot be registered from the path"):
        runtime.save_path(tmp_path, tmp_path, SaveOptions())
