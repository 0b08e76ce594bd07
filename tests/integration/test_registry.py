"""The registry end to end through the public Client, on SQLite and on real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelyard import Client
from modelyard.core.entities import Status
from modelyard.errors import (
    ConflictError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    PredictionError,
    SignatureError,
    UnsupportedModelError,
)

Data = tuple[pd.DataFrame, np.ndarray]


def test_register_load_predict(client: Client, iris: Data, iris_model: LogisticRegression) -> None:
    X, _ = iris
    mv = client.register(iris_model, "iris", data=X, metrics={"accuracy": 0.97},
                         params={"C": 1.0}, tags={"team": "risk"}, description="first")
    assert (mv.name, mv.version, mv.format, mv.status) == ("iris", 1, "sklearn", Status.READY)
    assert mv.created_by == "tester"
    assert mv.lineage.metrics == {"accuracy": 0.97}
    assert mv.lineage.params == {"C": 1.0}
    assert mv.lineage.data is not None
    assert mv.lineage.data.rows == len(X)
    assert mv.lineage.data.schema == dict.fromkeys(X.columns, "float64")
    assert mv.signature is not None
    assert mv.signature.inputs.names == list(X.columns)
    assert mv.signature.outputs is not None
    assert mv.tags == {"team": "risk"}
    model = client.load("models:/iris/1")
    np.testing.assert_array_equal(model.predict(X), iris_model.predict(X))
    np.testing.assert_allclose(model.predict_proba(X), iris_model.predict_proba(X))


def test_versions_are_monotonic_and_never_reused(client: Client, iris: Data,
                                                  iris_model: LogisticRegression) -> None:
    X, _ = iris
    for expected in (1, 2, 3):
        assert client.register(iris_model, "m", data=X).version == expected
    client.delete_version("m", 3)
    assert client.register(iris_model, "m", data=X).version == 4
    client.delete_model("m")
    with pytest.raises(NotFoundError, match="no registered model named 'm'"):
        client.get_model("m")
    assert client.register(iris_model, "m", data=X).version == 5
    assert [v.version for v in client.list_versions("m")] == [5]


def test_lineage_parent_defaults_to_production(client: Client, iris: Data,
                                                iris_model: LogisticRegression) -> None:
    X, _ = iris
    client.register(iris_model, "p", data=X, alias="production")
    client.register(iris_model, "p", data=X)
    third = client.register(iris_model, "p", data=X)
    assert third.lineage.parent_version == 1
    explicit = client.register(iris_model, "p", data=X, parent=2)
    assert explicit.lineage.parent_version == 2


def test_code_version_recorded_inside_git(client: Client, iris: Data, tmp_path: Path,
                                          iris_model: LogisticRegression) -> None:
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    for cmd in (["git", "init", "-q"], ["git", "-c", "user.email=a@b", "-c", "user.name=a",
                                         "commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(cmd, cwd=repo, check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                            text=True, check=True).stdout.strip()
    mv = client.register(iris_model, "g", data=iris[0], code_dir=repo)
    assert mv.lineage.code is not None
    assert (mv.lineage.code.commit, mv.lineage.code.dirty) == (commit, False)
    outside = client.register(iris_model, "g", data=iris[0], code_dir=tmp_path)
    assert outside.lineage.code is None


def test_aliases_history_and_rollback(client: Client, iris: Data,
                                      iris_model: LogisticRegression) -> None:
    X, _ = iris
    for _ in range(3):
        client.register(iris_model, "a", data=X)
    client.set_alias("a", "production", 1, reason="first release")
    before_two = datetime.now(UTC)
    client.set_alias("a", "production", 2)
    client.set_alias("a", "production", 3)
    assert client.resolve("models:/a@production").version == 3
    change = client.rollback("a")
    assert (change.from_version, change.to_version) == (3, 2)
    assert client.resolve("a@production").version == 2
    assert client.resolve("a@production", at=before_two).version == 1
    history = client.alias_history("a", "production")
    assert [(h.from_version, h.to_version) for h in history] == [
        (None, 1), (1, 2), (2, 3), (3, 2)]
    assert history[0].reason == "first release"
    assert all(h.actor == "tester" for h in history)
    assert history[-1].reason.startswith("rollback")
    assert client.get_model("a").aliases == {"production": 2}
    assert client.get_version("a", 2).aliases == ("production",)
    client.delete_alias("a", "production")
    with pytest.raises(NotFoundError, match="has no alias 'production'"):
        client.resolve("a@production")


def test_rollback_without_history_is_a_conflict(client: Client, iris: Data,
                                                iris_model: LogisticRegression) -> None:
    client.register(iris_model, "r", data=iris[0], alias="production")
    with pytest.raises(ConflictError, match="no earlier version to roll back to"):
        client.rollback("r")


def test_archive_and_delete_rules(client: Client, iris: Data,
                                  iris_model: LogisticRegression) -> None:
    X, _ = iris
    client.register(iris_model, "z", data=X, alias="production")
    client.register(iris_model, "z", data=X)
    with pytest.raises(ConflictError, match="target of alias"):
        client.delete_version("z", 1)
    client.archive_version("z", 2)
    with pytest.raises(ConflictError, match="archived"):
        client.set_alias("z", "staging", 2)
    assert client.get_version("z", 2).status == Status.ARCHIVED
    client.archive_version("z", 2, restore=True)
    client.archive_model("z")
    assert [m.name for m in client.list_models()] == []
    assert [m.name for m in client.list_models(include_archived=True)] == ["z"]


def test_update_descriptions_and_tags(client: Client, iris: Data,
                                      iris_model: LogisticRegression) -> None:
    client.register(iris_model, "t", data=iris[0])
    assert client.update_model("t", description="d", tags={"k": "v"}).tags == {"k": "v"}
    mv = client.update_version("t", 1, description="v1", tags={"x": "1"})
    assert (mv.description, mv.tags) == ("v1", {"x": "1"})


def test_reference_profile_and_sample(client: Client, iris: Data,
                                      iris_model: LogisticRegression) -> None:
    X, _ = iris
    client.register(iris_model, "prof", data=X, alias="production")
    profile = client.get_profile("models:/prof@production")
    assert profile.rows == len(X)
    col = profile.column("sepal length (cm)")
    assert col.min == pytest.approx(X["sepal length (cm)"].min())
    sample = client.get_reference_sample("prof@production")
    assert sample.num_rows == len(X)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda c: c.load("models:/nope/1"), NotFoundError, "no registered model named 'nope'"),
        (lambda c: c.load("models:/bad/9"), NotFoundError, r"Version 9 of model 'bad' does not "
                                                         r"exist; its versions are 1"),
        (lambda c: c.load("models:/bad@gone"), NotFoundError, "has no alias 'gone'"),
        (lambda c: c.load("not a ref"), InvalidInputError, "must look like"),
        (lambda c: c.register(object(), "bad"), UnsupportedModelError, "cannot register"),
        (lambda c: c.register(LogisticRegression(), "bad name!"), InvalidInputError,
         "The model name must be"),
        (lambda c: c.set_alias("bad", "production", 5), NotFoundError, "Version 5"),
        (lambda c: c.register(None, "bad", metrics={"a": "x"}), InvalidInputError,
         "metric 'a' must be a number"),
    ],
    ids=["unknown-model", "unknown-version", "unknown-alias", "bad-ref", "unsupported-object",
         "bad-name", "alias-unknown-version", "bad-metric"],
)
def test_bad_input_leaves_store_intact(client: Client, iris: Data,
                                       iris_model: LogisticRegression, call, error, match) -> None:  # type: ignore[no-untyped-def]
    client.register(iris_model, "bad", data=iris[0])
    with pytest.raises(error, match=match):
        call(client)
    assert [v.version for v in client.list_versions("bad")] == [1]
    X = iris[0]
    np.testing.assert_array_equal(client.load("bad/1").predict(X), iris_model.predict(X))


class _Exploding:
    """A pyfunc-shaped model whose predict always fails."""

    def load(self, context: object) -> None:
        return None

    def predict(self, data: object) -> object:
        raise RuntimeError("boom")


def test_model_that_raises_is_not_registered(client: Client, iris: Data) -> None:
    with pytest.raises(PredictionError, match="raised RuntimeError"):
        client.register(_Exploding(), "explode", data=iris[0])
    with pytest.raises(NotFoundError):
        client.get_model("explode")


def test_prediction_errors_are_wrapped(client: Client, iris: Data,
                                       iris_model: LogisticRegression) -> None:
    X, _ = iris
    client.register(iris_model, "sig", data=X)
    model = client.load("sig/1")
    with pytest.raises(SignatureError, match=r"missing column\(s\) \['petal width \(cm\)'\]"):
        model.predict(X.drop(columns=["petal width (cm)"]))


def test_tampered_artifact_is_not_loaded(client: Client, settings, iris: Data,  # type: ignore[no-untyped-def]
                                         iris_model: LogisticRegression) -> None:
    mv = client.register(iris_model, "tamper", data=iris[0])
    manifest = client.artifacts.get_manifest(mv.artifact_digest)
    blob = next(Path(settings.artifact_uri).rglob(manifest.entries[0].sha256))
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="failed its integrity check"):
        client.load("tamper/1")
    assert client.get_version("tamper", 1).artifact_digest == mv.artifact_digest


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    from modelyard.errors import StoreUnavailableError
    from modelyard.settings import Settings

    settings = Settings(home=tmp_path, database_url="postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(StoreUnavailableError, match="Cannot reach the registry database"):
        Client(settings).list_models()


def test_sklearn_models_load_without_importing_torch(tmp_path: Path) -> None:
    """skops' type listing would import torch (1.4 s, 180 MB) in every serving process."""
    import subprocess
    import sys

    code = f"""
import sys
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from modelyard import Client
from modelyard.settings import Settings
X, y = load_iris(return_X_y=True, as_frame=True)
with Client(Settings(home={str(tmp_path)!r})) as c:
    c.register(LogisticRegression(max_iter=300).fit(X, y), "t", data=X)
    c.load("t/1").predict(X)
print("torch" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


def test_artifacts_on_an_fsspec_uri(tmp_path: Path, iris: Data,
                                    iris_model: LogisticRegression) -> None:
    import uuid

    from modelyard.settings import Settings

    settings = Settings(home=tmp_path, artifact_uri=f"memory://yard-{uuid.uuid4().hex}")
    with Client(settings) as client:
        client.register(iris_model, "mem", data=iris[0], alias="production")
        model = client.load("mem@production")
        np.testing.assert_array_equal(model.predict(iris[0]), iris_model.predict(iris[0]))
        assert client.get_profile("mem@production").rows == len(iris[0])
