"""The per-chunk scorer: predictions, row-level refusals with reasons, whole-input errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pytest
from batch_helpers import FEATURES, make_model
from sklearn.linear_model import LinearRegression, LogisticRegression

from modelyard.batch.readers import ERROR_COLUMN, INPUT_COLUMN
from modelyard.batch.scoring import ChunkScorer, ScoringPlan
from modelyard.errors import InvalidInputError, PredictionError, SignatureError
from modelyard.runtimes.model import Model

PLAN = ScoringPlan(features=tuple(FEATURES), passthrough=("id",))


def _table(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


def test_a_clean_chunk_gets_sklearns_predictions(frame: pd.DataFrame, model: Model,
                                                 estimator: LogisticRegression) -> None:
    out = ChunkScorer(model, PLAN)(_table(frame))
    assert out.column_names == ["id", "prediction", "probability_0", "probability_1",
                                "model_version", ERROR_COLUMN, INPUT_COLUMN]
    np.testing.assert_array_equal(out.column("id").to_numpy(), frame["id"].to_numpy())
    np.testing.assert_array_equal(out.column("prediction").to_numpy(),
                                  estimator.predict(frame[FEATURES]))
    proba = np.column_stack([out.column("probability_0").to_numpy(),
                             out.column("probability_1").to_numpy()])
    np.testing.assert_allclose(proba, estimator.predict_proba(frame[FEATURES]), rtol=0,
                               atol=1e-15)
    assert set(out.column("model_version").to_pylist()) == {1}
    assert out.column(ERROR_COLUMN).null_count == len(frame)


TEXT = pa.string()
F64 = pa.float64()


@pytest.mark.parametrize(("values", "arrow_type", "reason"), [
    ([0.5, None, 1.0], F64,
     "column 'f1': missing value, which the model's signature does not allow"),
    ([0.5, float("nan"), 1.0], F64,
     "column 'f1': missing value, which the model's signature does not allow"),
    (["0.5", "abc", "1"], TEXT, "column 'f1': 'abc' is not a float64 number"),
    (["0.5", "", "1"], TEXT,
     "column 'f1': missing value, which the model's signature does not allow"),
    (["0.5", "NA", "1"], TEXT,
     "column 'f1': missing value, which the model's signature does not allow"),
    (["0.5", "1_000", "1"], TEXT, "column 'f1': '1_000' is not a float64 number"),
    ([0.5, None, 1.0], pa.null(), None),
], ids=["null", "nan", "text", "empty-text", "null-token", "python-only-number", "null-typed"])
def test_rows_that_break_the_signature_are_flagged_with_the_reason(
        frame: pd.DataFrame, model: Model, estimator: LogisticRegression, values: list[Any],
        arrow_type: pa.DataType, reason: str | None) -> None:
    head = frame.head(3)
    table = _table(head)
    column = pa.array(values if arrow_type != pa.null() else [None] * 3, arrow_type)
    table = table.set_column(table.column_names.index("f1"), "f1", column)
    out = ChunkScorer(model, PLAN)(table)
    errors = out.column(ERROR_COLUMN).to_pylist()
    if reason is None:  # a column with no value at all: every row is missing it
        assert errors == [
            "column 'f1': missing value, which the model's signature does not allow"] * 3
        return
    assert errors == [None, reason, None]
    good = head.iloc[[0, 2]].assign(f1=[0.5, 1.0])
    preds = out.column("prediction").to_pylist()
    assert preds[1] is None
    assert [preds[0], preds[2]] == list(estimator.predict(good[FEATURES]))
    original = orjson.loads(out.column(INPUT_COLUMN)[1].as_py())
    assert original["id"] == int(head["id"].iloc[1])


def test_a_quarantined_row_shows_numbers_as_numbers_and_bad_text_as_written(
        frame: pd.DataFrame, model: Model) -> None:
    table = _table(frame.head(2)[["id", *FEATURES]].astype({"f0": str, "f2": str}))
    table = table.set_column(1, "f0", pa.array(["0.25", "oops"]))
    out = ChunkScorer(model, PLAN)(table)
    row = orjson.loads(out.column(INPUT_COLUMN)[1].as_py())
    assert row["f0"] == "oops"
    assert row["f2"] == pytest.approx(float(frame["f2"].iloc[1]), abs=0)  # parsed back


class _Picky(Model):
    """A model whose own check refuses rows with f0 > 4: something no column rule catches."""

    calls = 0

    def prepare(self, data: Any) -> Any:
        type(self).calls += 1
        values = np.asarray(data["f0"])
        if (values > 4).any():
            raise SignatureError(f"f0 is above 4 in {int((values > 4).sum())} row(s)")
        return super().prepare(data)


def test_bisection_finds_the_rows_the_signature_refuses(frame: pd.DataFrame, model: Model,
                                                        estimator: LogisticRegression) -> None:
    picky = _Picky(model.predictor, model.version)
    data = frame.head(512).copy()
    bad = [3, 200, 201, 511]
    data.loc[bad, "f0"] = 5.0
    _Picky.calls = 0
    out = ChunkScorer(picky, PLAN)(_table(data))
    errors = out.column(ERROR_COLUMN).to_pylist()
    assert [i for i, e in enumerate(errors) if e is not None] == bad
    assert {errors[i] for i in bad} == {"f0 is above 4 in 1 row(s)"}
    assert _Picky.calls <= 2 + 2 * len(bad) * 9 + 1  # ~2 checks per level per bad row
    good = data.drop(index=bad)
    preds = np.array([p for p in out.column("prediction").to_pylist() if p is not None])
    np.testing.assert_array_equal(preds, estimator.predict(good[FEATURES]))


def test_a_column_no_row_can_match_is_an_error_for_the_whole_input(
        frame: pd.DataFrame) -> None:
    ints = frame[FEATURES].round().astype(np.int64)
    model = make_model(LogisticRegression().fit(ints, frame["label"]), ints)
    with pytest.raises(InvalidInputError,
                       match=r"No row of the input can match the model's signature: The "
                             r"column 'f0' must be int64; float64 cannot be cast"):
        ChunkScorer(model, PLAN)(_table(frame.head(5)))


def test_a_tensor_model_reads_every_column_that_is_not_passed_through(
        frame: pd.DataFrame) -> None:
    X = frame[FEATURES].to_numpy()
    estimator = LogisticRegression().fit(X, frame["label"])
    model = make_model(estimator, X)  # signature: one tensor [-1, 4]
    assert model.signature is not None
    assert model.signature.inputs.kind == "tensors"
    out = ChunkScorer(model, PLAN)(_table(frame.head(20)))
    np.testing.assert_array_equal(out.column("prediction").to_numpy(),
                                  estimator.predict(X[:20]))


def test_a_model_without_signature_gets_the_columns_as_they_are(
        frame: pd.DataFrame, estimator: LogisticRegression) -> None:
    model = make_model(estimator, None, signature=None)
    out = ChunkScorer(model, PLAN)(_table(frame.head(20)))
    np.testing.assert_array_equal(out.column("prediction").to_numpy(),
                                  estimator.predict(frame[FEATURES].head(20)))


def test_a_regressor_has_no_probability_columns(frame: pd.DataFrame) -> None:
    estimator = LinearRegression().fit(frame[FEATURES], frame["f0"] * 2)
    out = ChunkScorer(make_model(estimator, frame[FEATURES]), PLAN)(_table(frame.head(5)))
    assert [c for c in out.column_names if c.startswith("probability_")] == []
    np.testing.assert_allclose(out.column("prediction").to_numpy(),
                               estimator.predict(frame[FEATURES].head(5)))


def test_string_classes_name_the_probability_columns(frame: pd.DataFrame) -> None:
    labels = np.where(frame["label"] == 1, "fraud", "ok")
    estimator = LogisticRegression().fit(frame[FEATURES], labels)
    out = ChunkScorer(make_model(estimator, frame[FEATURES]), PLAN)(_table(frame.head(5)))
    assert {"probability_fraud", "probability_ok"} <= set(out.column_names)
    assert out.column("prediction").to_pylist() == list(
        estimator.predict(frame[FEATURES].head(5)))


class _Broken:
    def __init__(self, result: Any = None) -> None:
        self.result = result

    def predict(self, data: Any) -> Any:
        if self.result is None:
            raise ValueError("boom")
        return self.result


@pytest.mark.parametrize(("predictor", "match"), [
    (_Broken(), r"Model models:/m/1 raised ValueError while scoring a chunk: boom"),
    (_Broken(np.zeros(2)), r"returned predict of shape \[2\] for 5 input rows"),
], ids=["raises", "wrong-length"])
def test_a_model_that_fails_is_a_prediction_error(frame: pd.DataFrame, model: Model,
                                                  predictor: Any, match: str) -> None:
    broken = Model(predictor, model.version)
    with pytest.raises(PredictionError, match=match):
        ChunkScorer(broken, PLAN)(_table(frame.head(5)))


def test_log_inputs_returns_the_checked_inputs(frame: pd.DataFrame, model: Model) -> None:
    plan = ScoringPlan(features=tuple(FEATURES), passthrough=("id",), log_inputs=True)
    out = ChunkScorer(model, plan)(_table(frame.head(4)))
    for name in FEATURES:
        np.testing.assert_array_equal(out.column(f"in.{name}").to_numpy(),
                                      frame[name].head(4).to_numpy())


def test_a_chunk_where_every_row_is_refused_predicts_nothing(frame: pd.DataFrame,
                                                             model: Model) -> None:
    table = _table(frame.head(3))
    table = table.set_column(1, "f0", pa.nulls(3, pa.float64()))
    out = ChunkScorer(model, PLAN)(table)
    assert out.column("prediction").null_count == 3
    assert out.column(ERROR_COLUMN).null_count == 0

