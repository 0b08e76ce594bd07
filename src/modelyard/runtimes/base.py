"""The Runtime protocol every model format implements, and the loaded model users call.

A runtime is a small, stateless plugin found through the ``modelyard.runtimes`` entry point
group. It saves an in-memory model (or a file the user already saved) into a directory, loads
that directory back into a :class:`Predictor`, and says which objects and files it handles.
It imports its framework (torch, xgboost...) inside its methods, never at module level.

Predictors receive input already checked against the signature: either ordered named columns
(``dict[str, np.ndarray]``) or one ndarray. :func:`to_matrix` and :func:`to_frame` turn columns
into what most frameworks want.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from modelyard.core.signature import Signature
from modelyard.core.tabular import Columns

__all__ = [
    "LoadOptions",
    "Predictor",
    "Runtime",
    "SaveOptions",
    "SavedModel",
    "import_framework",
    "to_frame",
    "to_matrix",
]


@dataclass(frozen=True, slots=True)
class SaveOptions:
    """What the user allowed and supplied when registering."""

    sample_input: Any = None
    """Input data seen at registration (for tracing torch modules, checking predictions)."""

    trust_pickle: bool = False
    """Accept pickle/joblib/cloudpickle files, which can execute code when loaded."""

    trusted_types: tuple[str, ...] = ()
    """Extra type names a skops file may contain (beyond skops' own safe list)."""

    artifacts: dict[str, str] = field(default_factory=dict)
    """pyfunc: named files or folders copied next to the model and given to ``load(context)``."""

    code_paths: tuple[str, ...] = ()
    """pyfunc: Python files or packages stored with the model and importable when it loads."""


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """Reserved for load-time choices (threads, providers); empty today."""

    intra_op_threads: int | None = None


@dataclass(frozen=True, slots=True)
class SavedModel:
    """What :meth:`Runtime.save` reports back: metadata stored with the version."""

    meta: dict[str, Any]
    """JSON-serialisable facts the runtime needs at load time (class name, classes...)."""

    signature: Signature | None = None
    """A signature the model itself declares (ONNX, an MLflow MLmodel), if any."""

    format: str | None = None
    """The format to record when an importer hands over to another runtime (an MLflow folder
    holding a skops file is stored as ``sklearn``); ``None`` means the saving runtime's own."""


@runtime_checkable
class Predictor(Protocol):
    """A loaded model. ``predict_proba`` exists only where the model has probabilities."""

    def predict(self, data: Columns | np.ndarray) -> Any: ...


class Runtime(Protocol):
    """One model format."""

    format: ClassVar[str]
    """Stable id stored in the registry, e.g. ``"sklearn"``. Never an import path."""

    priority: ClassVar[int]
    """Higher runtimes are asked first (xgboost before sklearn for XGBClassifier)."""

    def can_save(self, obj: object) -> bool:
        """True if ``obj`` is a model of this format (checked without importing frameworks)."""
        ...

    def can_save_path(self, path: Path) -> bool:
        """True if ``path`` is a saved model file or folder of this format."""
        ...

    def save(self, obj: object, directory: Path, options: SaveOptions) -> SavedModel:
        """Write ``obj`` into the empty ``directory``."""
        ...

    def save_path(self, path: Path, directory: Path, options: SaveOptions) -> SavedModel:
        """Copy (and check) the saved model at ``path`` into the empty ``directory``."""
        ...

    def load(self, directory: Path, meta: dict[str, Any], options: LoadOptions) -> Predictor:
        """Load what :meth:`save` wrote; ``meta`` is what it returned."""
        ...


def import_framework(module: str, extra: str, purpose: str) -> Any:
    """Import a model framework on first use, or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        from modelyard.errors import DependencyMissingError

        raise DependencyMissingError(module, extra, purpose) from None


def to_matrix(data: Columns | np.ndarray, dtype: Any = None) -> np.ndarray:
    """Stack columns into a 2-D array (C order), or return the tensor as is."""
    if isinstance(data, np.ndarray):
        return data if dtype is None else data.astype(dtype, copy=False)
    arrays = list(data.values())
    if not arrays:
        return np.empty((0, 0), dtype=dtype or np.float64)
    out = np.column_stack(arrays)
    return out if dtype is None else out.astype(dtype, copy=False)


def to_frame(data: Columns | np.ndarray, columns: Any = None) -> Any:
    """Build a pandas DataFrame from columns (or from a matrix and column names).

    ``columns`` may be a prebuilt ``pandas.Index``: callers on a hot path keep one, since
    building the column index is most of the cost of a one-row frame.
    """
    import pandas as pd

    if isinstance(data, np.ndarray):
        return pd.DataFrame(data, columns=columns, copy=False)
    arrays = list(data.values())
    names = list(data) if columns is None else columns
    if arrays and arrays[0].dtype.kind in "biuf" and all(
            a.ndim == 1 and a.dtype == arrays[0].dtype for a in arrays):
        # One 2-D block: three times faster than letting pandas consolidate the columns.
        return pd.DataFrame(_column_block(arrays), columns=names, copy=False)
    frame = pd.DataFrame(data, copy=False)
    if columns is not None:
        frame.columns = columns
    return frame


def _column_block(arrays: list[np.ndarray]) -> np.ndarray:
    """The columns as one Fortran-ordered ``(rows, columns)`` block, the dtype
    ``np.column_stack`` would give.

    Each column is one contiguous copy here, where ``column_stack`` writes a C-ordered block
    with one strided store per value: about four times faster for 100,000 rows x 30 columns.
    pandas keeps the block as its ``(columns, rows)`` transpose, which is then C-ordered too,
    so each column of the frame is contiguous in memory, as it is when pandas builds it.

    >>> _column_block([np.array([1, 2]), np.array([3, 4])]).flags.f_contiguous
    True
    """
    # All dtypes are equal here; result_type gives the native byte order, as column_stack does.
    out = np.empty((len(arrays[0]), len(arrays)), dtype=np.result_type(arrays[0]), order="F")
    for j, column in enumerate(arrays):
        out[:, j] = column
    return out
