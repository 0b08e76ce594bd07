"""The signature gate: compatible, identical and off, for columns and tensors."""

from __future__ import annotations

import pandas as pd
import pytest
from gates_helpers import X10, Y10, Threshold, columns, holdout, model

from modelyard.core.signature import Schema, Signature, TensorSpec
from modelyard.pipelines import GatesConfig, run_gates
from modelyard.pipelines.compatibility import signature_check

CHAMPION = columns(("x", "float64"), ("n", "int64"), ("city", "string"))
HOLDOUT = ["x", "n", "city", "new"]


def _check(mode: str, candidate: Signature | None, champion: Signature | None = CHAMPION,
           *, holdout_columns: list[str] = HOLDOUT, has_champion: bool = True):  # type: ignore[no-untyped-def]
    return signature_check(mode, candidate, champion,  # type: ignore[arg-type]
                           holdout_columns=holdout_columns, has_champion=has_champion)


@pytest.mark.parametrize("candidate", [
    pytest.param(CHAMPION, id="same"),
    pytest.param(columns(("city", "string"), ("x", "float64"), ("n", "int64")), id="reordered"),
    pytest.param(columns(("x", "float64"), ("n", "float64"), ("city", "string")),
                 id="int-widened-to-float"),
    pytest.param(columns(("x", "float64"), ("n", "int64"), ("city", "string"), ("new", "bool")),
                 id="new-input-in-holdout"),
    pytest.param(columns(("x", "float64", True), ("n", "int64"), ("city", "string")),
                 id="now-nullable"),
])
def test_compatible_candidates(candidate: Signature) -> None:
    check = _check("compatible", candidate)
    assert check is not None
    assert (check.name, check.passed, check.detail) == ("signature", True, "compatible inputs")


@pytest.mark.parametrize(("candidate", "detail"), [
    pytest.param(columns(("x", "float64"), ("city", "string")),
                 "compatible: input 'n' of the champion is missing in the candidate",
                 id="dropped-input"),
    pytest.param(columns(("x", "int64"), ("n", "int64"), ("city", "string")),
                 "compatible: column 'x' (float64 in the champion): The column 'x' must be "
                 "int64; float64 cannot be cast to it without losing information.",
                 id="float-narrowed-to-int"),
    pytest.param(columns(("x", "float64"), ("n", "int64"), ("city", "float64")),
                 "compatible: column 'city' (string in the champion): The column 'city' must "
                 "hold float64 numbers. Got text such as 'a'.", id="text-to-numbers"),
    pytest.param(columns(("x", "float64"), ("n", "int64"), ("city", "string"),
                         ("income", "float64")),
                 "compatible: the holdout lacks input(s) ['income'] that the candidate "
                 "requires", id="new-input-missing-in-holdout"),
])
def test_incompatible_candidates(candidate: Signature, detail: str) -> None:
    check = _check("compatible", candidate)
    assert check is not None
    assert (check.passed, check.detail) == (False, detail)


def test_a_column_that_refuses_the_missing_values_the_champion_accepted() -> None:
    champion = columns(("x", "float64", True))
    check = _check("compatible", columns(("x", "float64")), champion)
    assert check is not None
    assert not check.passed
    assert "holds missing values (NaN or null)" in check.detail


def test_many_problems_are_counted_after_five() -> None:
    champion = columns(*[(f"c{i}", "float64") for i in range(8)])
    check = _check("compatible", columns(("other", "float64")), champion,
                   holdout_columns=["other"])
    assert check is not None
    assert check.detail.count("is missing in the candidate") == 5
    assert check.detail.endswith("; and 3 more")


@pytest.mark.parametrize(("candidate", "passed", "detail"), [
    pytest.param(CHAMPION, True, "identical inputs", id="same"),
    pytest.param(columns(("n", "int64"), ("x", "float64"), ("city", "string")), False,
                 "identical: the inputs are in another order: ['n', 'x', 'city'] instead of "
                 "['x', 'n', 'city']", id="order"),
    pytest.param(columns(("x", "float64"), ("n", "float64"), ("city", "string", True)), False,
                 "identical: 'n' is int64 in the champion and float64 in the candidate; "
                 "'city' is string in the champion and string (nullable) in the candidate",
                 id="dtype-and-nullability"),
    pytest.param(columns(("x", "float64"), ("n", "int64"), ("city", "string"), ("new", "bool")),
                 False, "identical: only the candidate has ['new']", id="added"),
])
def test_identical(candidate: Signature, passed: bool, detail: str) -> None:
    check = _check("identical", candidate)
    assert check is not None
    assert (check.passed, check.detail) == (passed, detail)


def test_off_runs_no_check_and_missing_champions_or_signatures_are_said() -> None:
    assert _check("off", columns(("z", "string"))) is None
    none = _check("compatible", CHAMPION, None, has_champion=False)
    assert none is not None
    assert (none.passed, none.detail) == (True, "no champion")
    unsigned = _check("identical", CHAMPION, None)
    assert unsigned is not None
    assert unsigned.passed
    assert unsigned.detail == "not compared: the champion has no signature"
    bare = _check("compatible", None)
    assert bare is not None
    assert not bare.passed
    assert "the candidate has no signature" in bare.detail
    lacking = _check("compatible", columns(("q", "float64")), None, has_champion=False)
    assert lacking is not None
    assert not lacking.passed


def _tensor(shape: tuple[int, ...], dtype: str = "float32") -> Signature:
    return Signature(Schema("tensors", tensors=(TensorSpec("input", dtype, shape),)))


@pytest.mark.parametrize(("candidate", "passed"), [
    pytest.param(_tensor((-1, 4)), True, id="same"),
    pytest.param(_tensor((-1, 4), "float64"), True, id="wider-float"),
    pytest.param(_tensor((-1, -1)), True, id="free-dimension"),
    pytest.param(_tensor((-1, 5)), False, id="other-width"),
    pytest.param(_tensor((-1, 4), "int64"), False, id="float-to-int"),
    pytest.param(columns(("x", "float64")), False, id="columns-instead"),
])
def test_tensors(candidate: Signature, passed: bool) -> None:
    check = _check("compatible", candidate, _tensor((-1, 4)), holdout_columns=["a"])
    assert check is not None
    assert check.passed is passed, check.detail


def test_run_gates_reports_the_signature_first_and_fails_on_it() -> None:
    candidate = model(Threshold(), number=2, signature=columns(("x", "int64")))
    champion = model(Threshold(), signature=columns(("x", "float64")))
    report = run_gates(candidate.version, candidate, holdout(X10, Y10), GatesConfig(),
                       champion_model=champion)
    assert report.checks[0].name == "signature"
    assert not report.passed
    assert report.champion == "models:/m/1"
    # Integers fit both; with the gate off, nothing but the models' own checks runs.
    ints = pd.DataFrame({"x": [1, 0, 1], "y": [1, 0, 0]})
    off = run_gates(candidate.version, candidate, ints, GatesConfig(signature="off"),
                    champion_model=champion)
    assert off.passed
    assert [c.name for c in off.checks] == []
