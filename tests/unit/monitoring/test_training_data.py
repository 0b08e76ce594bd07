"""Logged inputs joined with their labels, one row per logged input row, named for training."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from modelyard.core.inference import InferenceRecord
from modelyard.errors import InvalidInputError
from modelyard.monitoring.feedback import feedback_from_columns
from modelyard.monitoring.inference_log import records_to_tables
from modelyard.monitoring.training_data import (
    latest_labels,
    parse_time_bound,
    training_rows,
)


def logged() -> pa.Table:
    records = [
        InferenceRecord("r1", "m", 1, 100.0, {"age": np.array([30.0, 40.0]),
                                              "city": np.array(["a", "b"], object)},
                        {"predict": np.array(["no", "yes"], object),
                         "predict_proba": np.array([[0.9, 0.1], [0.2, 0.8]])}, 1.0, "v2"),
        InferenceRecord("r2", "m", 2, 101.0, {"age": np.array([50.0]),
                                              "city": np.array(["c"], object)},
                        {"predict": np.array(["no"], object),
                         "predict_proba": np.array([[0.6, 0.4]])}, 1.0, "v2"),
        InferenceRecord("bad", "m", 2, 102.0, None, {}, 1.0, "v2", "InvalidInputError"),
    ]
    tables = records_to_tables(records)
    return pa.concat_tables([tables[("m", 1)], tables[("m", 2)]], promote_options="permissive")


def labels() -> pa.Table:
    return feedback_from_columns(
        ["r1", "r1", "r2", "r1", "nobody"], ["yes", "no", "no", "yes", "x"],
        rows=[1, 0, 0, 1, 0], timestamps=[200.0, 201.0, 202.0, 150.0, 1.0])


def test_rows_are_flat_and_joined_with_the_latest_label() -> None:
    out = training_rows(logged(), labels(), classes=["no", "yes"])
    assert out.column_names == ["request_id", "row", "timestamp", "version", "age", "city",
                                "prediction", "proba_no", "proba_yes", "label",
                                "label_timestamp"]
    rows = out.to_pylist()
    assert [(r["request_id"], r["row"]) for r in rows] == [("r1", 0), ("r1", 1), ("r2", 0)]
    assert rows[1] == {"request_id": "r1", "row": 1, "timestamp": 100.0, "version": 1,
                       "age": 40.0, "city": "b", "prediction": "yes", "proba_no": 0.2,
                       "proba_yes": 0.8, "label": "yes", "label_timestamp": 200.0}
    assert rows[0]["label"] == "no"
    assert rows[2]["version"] == 2


def test_unlabelled_rows_can_be_kept_and_classes_default_to_numbers() -> None:
    out = training_rows(logged(), None, labelled_only=False)
    assert out.num_rows == 3  # the failed request is left out
    assert out.column("label").null_count == 3
    assert "proba_0" in out.column_names
    assert "proba_1" in out.column_names
    assert training_rows(logged(), labels(), classes=["only-one"]).column_names[7] == "proba_0"


def test_other_outputs_and_empty_inputs() -> None:
    rec = InferenceRecord("q", "m", 1, 1.0, {"x": np.array([1.0])},
                          {"score": np.array([0.3]), "embedding": np.array([[1.0, 2.0]])},
                          1.0, "v2")
    out = training_rows(records_to_tables([rec])[("m", 1)], None, labelled_only=False)
    assert {"output_score", "output_embedding"} <= set(out.column_names)
    empty = training_rows(logged().slice(0, 0), labels())
    assert empty.num_rows == 0
    assert "label" in empty.column_names


def test_an_input_named_like_a_training_column_is_refused() -> None:
    rec = InferenceRecord("q", "m", 1, 1.0, {"label": np.array([1.0])},
                          {"predict": np.array([1])}, 1.0, "v2")
    with pytest.raises(InvalidInputError, match=r"input column\(s\) \['label'\]"):
        training_rows(records_to_tables([rec])[("m", 1)], None)


def test_latest_labels_keeps_one_per_row() -> None:
    out = latest_labels(labels()).to_pylist()
    assert {(r["request_id"], r["row"]): r["label"] for r in out} == {
        ("r1", 1): "yes", ("r1", 0): "no", ("r2", 0): "no", ("nobody", 0): "x"}


@pytest.mark.parametrize(("text", "expected"), [
    ("7d", 1_000_000.0 - 7 * 86400), ("90m", 1_000_000.0 - 5400), ("1700000000", 1.7e9),
    ("2026-01-01", 1767225600.0), ("2026-01-01T01:00:00Z", 1767229200.0),
    ("2026-01-01T03:00:00+02:00", 1767229200.0), (None, None),
], ids=["days", "minutes", "epoch", "date", "utc", "offset", "none"])
def test_time_bounds(text: str | None, expected: float | None) -> None:
    assert parse_time_bound(text, now=1_000_000.0) == expected


def test_a_bad_time_bound_says_what_it_takes() -> None:
    with pytest.raises(InvalidInputError, match="neither a duration nor a time"):
        parse_time_bound("last tuesday", now=0.0)
