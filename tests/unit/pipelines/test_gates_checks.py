"""User checks (module:function) and the report's JSON form."""

from __future__ import annotations

import json
import math
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from gates_helpers import X10, Y10, Threshold, holdout, model

from modelyard.errors import ConfigurationError
from modelyard.pipelines import (
    CheckContext,
    GateCheck,
    GatesConfig,
    MetricGate,
    ValidationReport,
    run_gates,
)
from modelyard.pipelines.checks import load_check

CHECKS = """\
import numpy as np

def passes(ctx):
    return True

def fails(ctx):
    return False

def with_detail(ctx):
    acc = ctx.candidate_metrics["accuracy"]
    return acc > ctx.champion_metrics["accuracy"], f"accuracy {acc:.2f}"

def numpy_bool(ctx):
    return np.bool_(ctx.target == "y")

def raises(ctx):
    raise ValueError("holdout has no column 'region'")

def looks(ctx):
    assert ctx.candidate.uri == "models:/m/2" and ctx.champion.uri == "models:/m/1"
    predictions = ctx.candidate_model.predict(ctx.data[["x"]])
    return bool(len(predictions) == len(ctx.data) == 10), ctx.champion_model.name

def lowest_prediction(ctx):  # docs/ci.md's example
    predictions = ctx.candidate_model.predict(ctx.features())
    lowest = float(np.min(predictions))
    return lowest >= 0, f"lowest prediction {lowest:.2f}"

def recall_per_region(ctx):  # docs/ci.md's example
    data = ctx.data.assign(hit=ctx.candidate_model.predict(ctx.features()) == 1)
    recall = data[data[ctx.target] == 1].groupby("region")["hit"].mean()
    return recall.min() >= 0.8, f"worst region recall {recall.min():.2f} ({recall.idxmin()})"

def returns_text(ctx):
    return "yes"

NOT_A_FUNCTION = 3
"""


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module of checks in the current directory, under a name no other test imports."""
    name = f"gate_checks_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(CHECKS)
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def _run(*specs: str) -> ValidationReport:
    candidate, champion = model(Threshold(0.35), number=2), model(Threshold(0.5))
    return run_gates(candidate.version, candidate, holdout(X10, Y10),
                     GatesConfig(checks=list(specs), signature="off"), champion_model=champion)


def test_checks_pass_fail_and_explain(module: str) -> None:
    report = _run(*(f"{module}:{fn}" for fn in
                    ("passes", "fails", "with_detail", "numpy_bool", "looks")))
    got = [(c.name.split(":")[-1], c.passed, c.detail) for c in report.checks]
    assert got == [("passes", True, "passed"), ("fails", False, "failed"),
                   ("with_detail", True, "accuracy 0.90"), ("numpy_bool", True, "passed"),
                   ("looks", True, "m")]
    assert report.checks[0].name == f"check:{module}:passes"
    assert not report.passed


def test_the_documented_examples_run_on_a_holdout_with_more_columns(module: str) -> None:
    candidate, champion = model(Threshold(0.35), number=2), model(Threshold(0.5))
    data = holdout(X10, Y10).assign(region=["n", "s"] * 5)
    report = run_gates(candidate.version, candidate, data,
                       GatesConfig(target="y", checks=[f"{module}:lowest_prediction",
                                                       f"{module}:recall_per_region"]),
                       champion_model=champion)
    assert [(c.passed, c.detail) for c in report.checks[1:]] == [
        (True, "lowest prediction 0.00"), (True, "worst region recall 1.00 (n)")]


def test_a_check_that_raises_or_returns_nonsense_fails_without_stopping_the_others(
        module: str) -> None:
    report = _run(f"{module}:raises", f"{module}:returns_text", f"{module}:passes")
    raised, text, passed = report.checks
    assert (raised.passed, raised.detail) == (
        False, "raised ValueError: holdout has no column 'region'")
    assert not text.passed
    assert text.detail.startswith("returned str 'yes'; a check must return a bool")
    assert passed.passed


@pytest.mark.parametrize(("spec", "match"), [
    ("gate_checks_absent_module:fn",
     r"Cannot import the module of check 'gate_checks_absent_module:fn': "
     r"ModuleNotFoundError: No module named 'gate_checks_absent_module'"),
    ("{module}:missing", r"Check '{module}:missing': module '{module}' has no 'missing'"),
    ("{module}:NOT_A_FUNCTION",
     r"Check '{module}:NOT_A_FUNCTION' is not a function: it is int 3\."),
    ("{module}", r"Invalid check '{module}': a check is 'module:function'"),
])
def test_checks_that_cannot_be_imported_are_configuration_errors(module: str, spec: str,
                                                                  match: str) -> None:
    spec, match = spec.format(module=module), match.format(module=module)
    with pytest.raises(ConfigurationError, match=match) as info:
        load_check(spec)
    assert info.value.hint
    # run_gates imports every check before any model runs, and raises the same error
    candidate = model(Threshold())
    config = GatesConfig.model_construct(checks=[spec], metrics={}, signature="off",
                                         target=None, latency_p99_ms=None, latency_samples=1,
                                         max_size_mb=None)
    with pytest.raises(ConfigurationError, match=match):
        run_gates(candidate.version, candidate, holdout(X10, Y10), config)


def test_a_module_that_fails_to_import_names_the_spec(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "gate_checks_broken.py").write_text("raise RuntimeError('no GPU here')\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=r"'gate_checks_broken:f': RuntimeError: no "
                                                 r"GPU here"):
        load_check("gate_checks_broken:f")
    assert str(tmp_path) not in sys.path  # the current directory is searched, then removed


def test_the_context_is_frozen(module: str) -> None:
    candidate = model(Threshold())
    ctx = CheckContext(candidate.version, candidate, None, None, holdout(X10, Y10), "y", {}, {})
    with pytest.raises(AttributeError):
        ctx.target = "x"  # type: ignore[misc]


def test_report_to_dict_is_strict_json() -> None:
    report = ValidationReport(
        candidate="models:/m/2", champion="models:/m/1", passed=False,
        checks=[GateCheck("accuracy.min", True, "ok", 0.9, 0.8),
                GateCheck("mae.min_relative_delta", False, "worse", -math.inf, 0.0),
                GateCheck("check:a:b", False, "raised")],
        candidate_metrics={"accuracy": 0.9, "log_loss": math.nan},
        champion_metrics={"accuracy": 0.8}, rows=10)
    d = report.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert d == {
        "candidate": "models:/m/2", "champion": "models:/m/1", "passed": False, "rows": 10,
        "failed": ["mae.min_relative_delta", "check:a:b"],
        "checks": [
            {"name": "accuracy.min", "passed": True, "detail": "ok", "value": 0.9,
             "threshold": 0.8},
            {"name": "mae.min_relative_delta", "passed": False, "detail": "worse",
             "value": None, "threshold": 0.0},
            {"name": "check:a:b", "passed": False, "detail": "raised", "value": None,
             "threshold": None},
        ],
        "candidate_metrics": {"accuracy": 0.9, "log_loss": None},
        "champion_metrics": {"accuracy": 0.8},
        "deltas": {"accuracy": pytest.approx(0.1)},
    }
    assert [c.name for c in report.failed()] == d["failed"]


def test_a_real_report_round_trips_through_json() -> None:
    candidate, champion = model(Threshold(0.35), number=2), model(Threshold(0.5))
    report = run_gates(candidate.version, candidate, holdout(X10, Y10),
                       GatesConfig(metrics={"accuracy": MetricGate(min_delta=0.05)}),
                       champion_model=champion)
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert d["passed"] is True
    assert d["failed"] == []
    assert d["candidate_metrics"]["accuracy"] == 0.9
    assert d["champion_metrics"]["accuracy"] == 0.8
    assert [c["name"] for c in d["checks"]] == ["signature", "accuracy.min_delta"]
