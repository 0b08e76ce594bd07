"""The public surface is decided, and importing modelyard stays light."""

from __future__ import annotations

import subprocess
import sys

import modelyard

PUBLIC = [
    "Client",
    "ConfigurationError",
    "ConflictError",
    "IntegrityError",
    "InvalidInputError",
    "ModelyardError",
    "NotFoundError",
    "PredictionError",
    "Settings",
    "SignatureError",
    "StoreUnavailableError",
    "UnsafeModelError",
    "UnsupportedModelError",
    "__version__",
    "load",
    "register",
]


def test_all_is_pinned() -> None:
    assert sorted(modelyard.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert getattr(modelyard, name) is not None


def test_import_pulls_in_no_heavy_library() -> None:
    heavy = ["torch", "sklearn", "onnxruntime", "xgboost", "lightgbm", "ray", "sqlalchemy",
             "pandas", "pyarrow", "mlflow", "skops"]
    code = (
        "import sys, modelyard; "
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""


def test_errors_share_one_root() -> None:
    for name in PUBLIC:
        obj = getattr(modelyard, name)
        if isinstance(obj, type) and name.endswith("Error"):
            assert issubclass(obj, modelyard.ModelyardError)


def test_error_message_carries_the_hint() -> None:
    err = modelyard.NotFoundError("No model 'x'.", hint="Run 'modelyard models list'.")
    assert str(err) == "No model 'x'. Run 'modelyard models list'."
