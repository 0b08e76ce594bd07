"""An MLflow PythonModel for the import tests; importing this module imports mlflow."""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd


class RowSum(mlflow.pyfunc.PythonModel):  # type: ignore[misc]  # mlflow is untyped here
    """Sums each row, so its predictions are easy to check."""

    # A DataFrame hint: MLflow warns about a missing or an Any hint.
    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        return model_input.to_numpy(dtype=np.float64).sum(axis=1)
