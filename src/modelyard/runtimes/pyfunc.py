"""Your own Python class as a model: anything with ``load(context)`` and ``predict(data)``.

Nothing is pickled. The class is stored by reference (``module:QualName``) and rebuilt at load
time with no arguments; whatever it needs comes through ``load(context)``:

* ``context.artifacts`` maps the names given in ``artifacts={"name": "local/path"}`` to the
  absolute paths of their copies stored with the model;
* ``context.model_dir`` is the folder holding the stored model.

The class must be importable where the model is served: install the package that defines it,
or pass its files with ``code_paths=[...]``; they are stored under ``code/`` and put on
``sys.path`` before the class is imported.

    class Threshold:
        def load(self, context):
            self.cut = json.loads(Path(context.artifacts["config"]).read_text())["cut"]

        def predict(self, data):  # a DataFrame for tables, else an ndarray
            return (data.sum(axis=1) > self.cut).astype(int)
"""

from __future__ import annotations

import importlib
import inspect
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modelyard.core.tabular import Columns
from modelyard.errors import InvalidInputError, UnsupportedModelError
from modelyard.runtimes.base import LoadOptions, SavedModel, SaveOptions, to_frame

__all__ = ["PyfuncContext", "PyfuncPredictor", "PyfuncRuntime"]

_ARTIFACTS = "artifacts"
_CODE = "code"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True, slots=True)
class PyfuncContext:
    """What ``load(context)`` receives."""

    artifacts: dict[str, str]
    """Artifact name -> absolute path of the stored file or folder."""

    model_dir: str
    """The folder the model was loaded from."""


class PyfuncPredictor:
    """Your loaded object; tables reach it as a pandas DataFrame, tensors as an ndarray."""

    def __init__(self, model: Any) -> None:
        self.model = model
        if callable(getattr(model, "predict_proba", None)):
            self.predict_proba = self._predict_proba

    def predict(self, data: Columns | np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(_native(data)))

    def _predict_proba(self, data: Columns | np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba(_native(data)))


class PyfuncRuntime:
    """Objects with ``load(context)`` and ``predict(data)`` methods (format id ``pyfunc``)."""

    format: ClassVar[str] = "pyfunc"
    priority: ClassVar[int] = 0  # duck typing matches a lot: every other runtime goes first

    def can_save(self, obj: object) -> bool:
        return (
            not isinstance(obj, type)
            and callable(getattr(obj, "load", None))
            and callable(getattr(obj, "predict", None))
        )

    def can_save_path(self, path: Path) -> bool:
        return False  # a folder of files says nothing about which class to run

    def save(self, obj: object, directory: Path, options: SaveOptions) -> SavedModel:
        reference = _class_reference(type(obj))
        artifacts = {
            name: _copy_artifact(name, Path(source), directory / _ARTIFACTS / name)
            for name, source in options.artifacts.items()
        }
        code = [_copy_code(Path(source), directory / _CODE) for source in options.code_paths]
        return SavedModel(
            meta={
                "class": reference,
                "artifacts": artifacts,
                "code": code,
                "has_proba": callable(getattr(obj, "predict_proba", None)),
            }
        )

    def save_path(self, path: Path, directory: Path, options: SaveOptions) -> SavedModel:
        raise UnsupportedModelError(
            f"A pyfunc model cannot be registered from the path {str(path)!r}.",
            hint="Register an instance of your class, with artifacts={...} for its files.",
        )

    def load(self, directory: Path, meta: dict[str, Any], options: LoadOptions) -> PyfuncPredictor:
        directory = directory.resolve()
        if meta.get("code"):
            code = str(directory / _CODE)
            # Stays on sys.path: the class may import its sibling modules lazily, at predict.
            if code not in sys.path:
                sys.path.insert(0, code)
        cls = _import_class(meta["class"])
        model = cls()
        artifacts = {name: str(directory / rel) for name, rel in meta.get("artifacts", {}).items()}
        model.load(PyfuncContext(artifacts=artifacts, model_dir=str(directory)))
        return PyfuncPredictor(model)


def _native(data: Columns | np.ndarray) -> Any:
    return data if isinstance(data, np.ndarray) else to_frame(data)


def _class_reference(cls: type) -> str:
    """``module:QualName`` for a class that can be imported again, else refuse it."""
    module, qualname = cls.__module__, cls.__qualname__
    if module == "__main__":
        raise UnsupportedModelError(
            f"The class {qualname} is defined in __main__ (your script or notebook), so it "
            "cannot be imported when the model is loaded elsewhere.",
            hint="Move the class into a module (a .py file) and import it from there; pass "
            "that file with code_paths=[...] if it is not part of an installed package.",
        )
    if "<locals>" in qualname:
        raise UnsupportedModelError(
            f"The class {qualname} is defined inside a function, so it cannot be imported "
            "when the model is loaded.",
            hint="Define the class at the top level of a module.",
        )
    try:
        required = [
            p.name
            for p in inspect.signature(cls).parameters.values()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
    except (TypeError, ValueError):  # some C types have no introspectable signature
        required = []
    if required:
        raise UnsupportedModelError(
            f"{qualname}() needs the arguments {required}, but pyfunc models are created "
            "with no arguments when they load.",
            hint="Give the arguments defaults and read settings in load(context), for example "
            "from an artifact file.",
        )
    return f"{module}:{qualname}"


def _import_class(reference: str) -> Any:
    module_name, _, qualname = reference.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnsupportedModelError(
            f"Cannot load the pyfunc model: its module {module_name!r} cannot be imported ({exc}).",
            hint=f"Install the package that provides {module_name!r} where the model is served, "
            "or register the model again with code_paths=[...] listing its file.",
        ) from exc
    for part in qualname.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise UnsupportedModelError(
                f"Cannot load the pyfunc model: the module {module_name!r} has no class "
                f"{qualname!r}.",
                hint="The module may have changed since the model was registered; register "
                "it again or restore the class.",
            )
    return found


def _copy_artifact(name: str, source: Path, target: Path) -> str:
    """Copy an artifact; a file keeps its name (libraries often go by the extension)."""
    if not _NAME.match(name):
        raise InvalidInputError(
            f"The artifact name {name!r} must be letters, digits, '_', '.' or '-'.",
            hint="Use a short name such as 'weights' or 'vocab'.",
        )
    if source.is_dir():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        return f"{_ARTIFACTS}/{name}"
    if source.is_file():
        target.mkdir(parents=True)
        shutil.copyfile(source, target / source.name)
        return f"{_ARTIFACTS}/{name}/{source.name}"
    raise InvalidInputError(
        f"The artifact {name!r} points to {str(source)!r}, which does not exist.",
        hint="Pass existing files or folders in artifacts={...}.",
    )


def _copy_code(source: Path, code: Path) -> str:
    """Copy a module file or a package folder under ``code/``; return its name there."""
    target = code / source.name
    if target.exists():
        raise InvalidInputError(
            f"Two code_paths are both named {source.name!r}; they would overwrite each other.",
            hint="Rename one of them, or pass their common parent package instead.",
        )
    if source.is_file() and source.suffix == ".py":
        code.mkdir(exist_ok=True)
        shutil.copyfile(source, target)
    elif source.is_dir():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    else:
        raise InvalidInputError(
            f"The code path {str(source)!r} is not a .py file or a package folder.",
            hint="Pass the module files or package folders your class imports.",
        )
    return source.name
