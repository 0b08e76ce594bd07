"""The Ray engine on a real local Ray instance gives the local engine's output, row for row."""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelyard import Client
from modelyard.batch import BatchOptions, LocalEngine, RayEngine, run_batch
from modelyard.cli.batch import RegistryLoader
from modelyard.cli.main import main
from modelyard.core.entities import Lineage, ModelVersion, Status
from modelyard.core.signature import Signature
from modelyard.runtimes.model import Model
from modelyard.runtimes.sklearn import SklearnPredictor
from modelyard.settings import Settings

FEATURES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    with warnings.catch_warnings():  # Ray's own deprecation notices on import
        warnings.simplefilter("ignore")
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    X = pd.DataFrame(np.round(rng.normal(size=(1500, 3)), 6), columns=FEATURES)
    return pd.concat([pd.DataFrame({"id": np.arange(1500) * 7}), X], axis=1)


@pytest.fixture(scope="module")
def model(frame: pd.DataFrame) -> Model:
    estimator = LogisticRegression().fit(frame[FEATURES], frame["a"] > frame["b"])
    version = ModelVersion("m", 4, "sklearn", Status.READY, dt.datetime.now(dt.UTC), "t",
                           "0" * 64, 0, Signature.infer(frame[FEATURES]), Lineage())
    return Model(SklearnPredictor(estimator), version)


def _input(frame: pd.DataFrame, path: Path) -> Path:
    """``frame`` with a few rows that break the signature: text, a missing value."""
    data = frame.astype({"b": object})
    data.loc[10, "b"] = "n/a?"
    data.loc[700, "b"] = None
    data.loc[1499, "b"] = "1e400x"
    if path.suffix == ".csv":
        data.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        data.to_json(path, orient="records", lines=True)
    else:
        frame.assign(b=frame["b"].where(frame.index != 700)).to_parquet(path, index=False)
    return path


def _assert_same_output(theirs: pd.DataFrame, mine: pd.DataFrame) -> None:
    """Rows, ids, labels and versions exactly; probabilities to 1e-12 relative. Ray cuts
    batches where its blocks end, and OpenBLAS may round a row's last bit differently at
    another position in its batch (seen on a SkylakeX machine: 2 values in 1,497 differ in
    the 15th digit; docs/batch.md)."""
    theirs, mine = theirs.sort_values("row"), mine.sort_values("row")
    floats = [c for c in mine.columns if mine[c].dtype.kind == "f"]
    assert floats, "the model's probabilities are missing"
    pd.testing.assert_frame_equal(theirs.drop(columns=floats), mine.drop(columns=floats),
                                  check_exact=True)
    pd.testing.assert_frame_equal(theirs[floats], mine[floats], check_exact=False, rtol=1e-12,
                                  atol=0.0)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"], ids=["csv", "parquet",
                                                                         "jsonl"])
def test_ray_writes_what_the_local_engine_writes(ray_instance: None, frame: pd.DataFrame,
                                                 model: Model, tmp_path: Path,
                                                 suffix: str) -> None:
    source = _input(frame, tmp_path / f"in{suffix}")
    options = BatchOptions(chunk_rows=256, id_column="id", on_error="quarantine")
    local = run_batch(model, source, tmp_path / "local.parquet", options=options,
                      engine=LocalEngine())
    ray = run_batch(model, source, tmp_path / "ray.parquet", options=options,
                    engine=RayEngine(workers=2, cpus_per_worker=0.5))
    assert (ray.engine, local.engine) == ("ray", "local")
    assert (ray.rows, ray.scored, ray.quarantined) == (local.rows, local.scored,
                                                       local.quarantined)
    assert local.quarantined == (1 if suffix == ".parquet" else 3)
    _assert_same_output(pd.read_parquet(tmp_path / "ray.parquet"),
                        pd.read_parquet(tmp_path / "local.parquet"))
    assert (tmp_path / "ray.quarantine.jsonl").read_bytes() == (
        tmp_path / "local.quarantine.jsonl").read_bytes()


def test_ray_resumes_a_run_the_local_engine_started(ray_instance: None, frame: pd.DataFrame,
                                                    model: Model, tmp_path: Path) -> None:
    source = _input(frame, tmp_path / "in.csv")
    options = BatchOptions(chunk_rows=200, id_column="id", on_error="skip")
    whole = run_batch(model, source, tmp_path / "whole.csv", options=options)

    class Stop(Exception):
        pass

    class StopAfterTwo:
        def __init__(self, sink: object) -> None:
            self.sink = sink
            self.left = 2

        @property
        def rows_done(self) -> int:
            return self.sink.rows_done  # type: ignore[attr-defined, no-any-return]

        def add(self, table: object) -> None:
            if self.left == 0:
                raise Stop
            self.left -= 1
            self.sink.add(table)  # type: ignore[attr-defined]

    class Interrupted(LocalEngine):
        def run(self, source, model, plan, chunk_rows, sink):  # type: ignore[no-untyped-def]
            super().run(source, model, plan, chunk_rows, StopAfterTwo(sink))

    with pytest.raises(Stop):
        run_batch(model, source, tmp_path / "out.csv", options=options, engine=Interrupted())
    resumed = run_batch(model, source, tmp_path / "out.csv", options=options,
                        engine=RayEngine(workers=1, cpus_per_worker=0.5))
    assert resumed.resumed_from == 400
    assert (resumed.rows, resumed.scored, resumed.skipped) == (whole.rows, whole.scored,
                                                               whole.skipped)
    _assert_same_output(pd.read_csv(tmp_path / "out.csv"), pd.read_csv(tmp_path / "whole.csv"))


def test_the_cli_runs_on_ray(ray_instance: None, frame: pd.DataFrame, model: Model,
                             tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Client(Settings()) as client:
        client.register(model.predictor.estimator,  # type: ignore[attr-defined]
                        "m", data=frame[FEATURES], alias="production")
    source = _input(frame, tmp_path / "in.parquet")
    common = ["batch", "models:/m@production", str(source), "--id-column", "id",
              "--chunk-rows", "500", "--on-error", "skip"]
    assert main([*common, "-o", str(tmp_path / "local.csv")]) == 0
    assert main([*common, "-o", str(tmp_path / "ray.csv"), "--engine", "ray",
                 "--workers", "1"]) == 0
    assert "with models:/m/1 (ray)" in capsys.readouterr().out
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    loaded = RegistryLoader(Settings(), "models:/m/1")()  # what a worker would run
    assert loaded.version.uri == "models:/m/1"
