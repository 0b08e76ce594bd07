"""``modelyard data audit``, driven through ``main(argv)`` against a registered sklearn pipeline
(numbers and a one-hot encoded category) with its reference profile, on SQLite."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from tests.integration.cli_runner import Result, Run, run_cli

from modelyard import Client
from modelyard.monitoring.quality import CHECK_NAMES
from modelyard.settings import Settings

REF = "models:/shop@production"


@dataclass(frozen=True)
class Yard:
    home: Path
    files: Path
    reference: pd.DataFrame


@pytest.fixture(scope="module")
def yard(tmp_path_factory: pytest.TempPathFactory) -> Yard:
    """One registry for the module: 'shop' (@production, with a profile) and 'bare' (without)."""
    home = tmp_path_factory.mktemp("audit-home")
    rng = np.random.default_rng(0)
    n = 400
    X = pd.DataFrame({
        "x": rng.normal(size=n),
        "n": rng.integers(0, 10, n),
        "color": pd.Series(rng.choice(np.array(["red", "green", "blue"], dtype=object), n),
                           dtype=object),
    })
    y = (X["x"] > 0).astype(int)
    model = make_pipeline(
        ColumnTransformer([("onehot", OneHotEncoder(handle_unknown="ignore"), ["color"])],
                          remainder="passthrough"),
        LogisticRegression(),
    ).fit(X, y)
    with Client(Settings(home=home)) as client:
        client.register(model, "shop", data=X, alias="production")
        client.register(model, "bare", alias="production")
    return Yard(home=home, files=tmp_path_factory.mktemp("audit-files"), reference=X)


@pytest.fixture
def run(yard: Yard, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setenv("MODELYARD_HOME", str(yard.home))
    monkeypatch.setenv("COLUMNS", "200")  # one table row per check, whatever the terminal

    def _run(*args: str | Path) -> Result:
        return run_cli(capsys, *args)

    return _run


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    return path


def _dirty(reference: pd.DataFrame) -> pd.DataFrame:
    data = reference.copy()
    data["x"] = data["x"].astype(object)
    data.loc[0, "x"] = "oops"  # type_mismatch
    data.loc[1, "x"] = None  # missing (the signature allows none)
    data.loc[2:41, "x"] = 99.0 + np.arange(40)  # out_of_range: 10% of the rows
    data.loc[42:45, "color"] = "purple"  # unseen_category
    data = pd.concat([data, data.iloc[100:140]], ignore_index=True)  # duplicate_rows: 9%
    return data.assign(store_id=7)  # schema: an unexpected column


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_clean_file_passes(run: Run, yard: Yard, suffix: str) -> None:
    path = _write(yard.reference, yard.files / f"clean{suffix}")
    result = run("data", "audit", path, "--against", REF)
    assert result.code == 0, result.err
    assert result.err == ""
    assert f"Data quality of clean{suffix} against models:/shop/1 (@production): 400 rows" in (
        result.out)
    assert "All 11 checks passed." in result.out
    assert "FAIL" not in result.out
    assert "PASS" not in result.out  # only failed checks are listed by default
    listed = run("data", "audit", path, "--against", REF, "--all")
    assert listed.code == 0
    assert listed.out.count("PASS") == 11


def test_dirty_file_fails_and_names_each_check(run: Run, yard: Yard) -> None:
    path = _write(_dirty(yard.reference), yard.files / "dirty.csv")
    result = run("data", "audit", path, "--against", REF)
    assert result.code == 1
    assert result.err == ""
    summary = result.out.strip().splitlines()[-1]
    assert summary == ("6 of 11 checks failed: schema, duplicate_rows, missing(x), "
                       "type_mismatch(x), out_of_range(x), unseen_category(color)")
    rows = [line for line in result.out.splitlines() if "FAIL" in line]
    assert len(rows) == 6
    for name in CHECK_NAMES:
        assert any(name in row for row in rows), name
    assert "'oops'" in result.out
    assert "'purple'" in result.out


def test_json_output(run: Run, yard: Yard) -> None:
    path = _write(_dirty(yard.reference), yard.files / "dirty.jsonl")
    result = run("data", "audit", path, "--against", REF, "--json")
    assert result.code == 1
    doc = result.json()
    assert (doc["file"], doc["model"], doc["aliases"]) == (str(path), "models:/shop/1",
                                                           ["production"])
    assert (doc["n_rows"], doc["passed"]) == (440, False)
    failed = {(c["name"], c["column"]) for c in doc["checks"] if not c["passed"]}
    assert failed == {("schema", None), ("duplicate_rows", None), ("missing", "x"),
                      ("type_mismatch", "x"), ("out_of_range", "x"),
                      ("unseen_category", "color")}
    assert doc["metrics"]["quality.duplicate_rate"] == pytest.approx(40 / 440, rel=1e-12)
    assert doc["metrics"]["feature.x.type_mismatch_rate"] == pytest.approx(1 / 440, rel=1e-12)

    clean = _write(yard.reference, yard.files / "clean-for-json.csv")
    ok = run("data", "audit", clean, "--against", "models:/shop/1", "--json")
    assert ok.code == 0
    assert ok.json()["passed"] is True


def test_config_thresholds_let_the_file_pass(run: Run, yard: Yard) -> None:
    path = _write(_dirty(yard.reference), yard.files / "dirty-config.csv")
    config = yard.files / "quality.yaml"
    config.write_text(
        "max_duplicate_rate: 0.1\n"
        "ignore_columns: [store_id]\n"
        "columns:\n"
        "  x: {max_missing_rate: 0.01, max_type_mismatch_rate: 0.01, max_out_of_range_rate: 1}\n"
        "  color: {max_unseen_category_rate: 0.01}\n"
    )
    result = run("data", "audit", path, "--against", REF, "--config", config)
    assert result.code == 0, result.out
    assert "All 11 checks passed." in result.out


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (lambda f: [f / "nope.csv", "--against", REF], 3, "There is no data file at"),
        (lambda f: [f / "clean.csv", "--against", "models:/ghost@production"], 3,
         "no registered model named 'ghost'"),
        (lambda f: [f / "clean.csv", "--against", "models:/shop@staging"], 3, "staging"),
        (lambda f: [f / "clean.csv", "--against", "models:/shop/x"], 2,
         "The model reference must look like"),
        (lambda f: [f / "clean.csv", "--against", "models:/bare@production"], 2,
         "registered without data, so it has no reference profile"),
        (lambda f: [_text(f / "notes.txt", "hello\n"), "--against", REF], 2,
         "Unsupported data file type '.txt'"),
        (lambda f: [_text(f / "empty.csv", "x,n,color\n"), "--against", REF], 2,
         "has no rows to audit"),
        (lambda f: [f / "clean.csv", "--against", REF, "--config", f / "none.yaml"], 3,
         "There is no quality config at"),
        (lambda f: [f / "clean.csv", "--against", REF, "--config",
                    _text(f / "bad.yaml", "columns: [\n")], 2, "is not valid YAML"),
        (lambda f: [f / "clean.csv", "--against", REF, "--config",
                    _text(f / "list.yaml", "- 1\n")], 2, "must hold a mapping"),
        (lambda f: [f / "clean.csv", "--against", REF, "--config",
                    _text(f / "range.yaml", "missing_margin: 2\n")], 2,
         "missing_margin: Input should be less than or equal to 1"),
        (lambda f: [f / "clean.csv", "--against", REF, "--config",
                    _text(f / "typo.yaml", "columns: {colour: {max_missing_rate: 0.1}}\n")],
         2, r"column\(s\) \['colour'\] that neither the data nor the reference has"),
    ],
    ids=["missing-file", "unknown-model", "unknown-alias", "bad-reference", "no-profile",
         "unsupported-file", "empty-file", "missing-config", "bad-yaml", "yaml-not-mapping",
         "threshold-out-of-range", "unknown-config-column"],
)
def test_bad_input_is_one_line_with_a_hint(
    run: Run, yard: Yard, args: Callable[[Path], list[str | Path]], code: int, message: str
) -> None:
    _write(yard.reference, yard.files / "clean.csv")
    result = run("data", "audit", *args(yard.files))
    assert result.code == code, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 2, result.err
    assert lines[0].startswith("Error: ")
    assert lines[1].startswith("Hint: ")
    assert re.search(message, lines[0]), lines[0]
    assert "Traceback" not in result.err
    assert result.out == ""
