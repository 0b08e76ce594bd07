"""The ``modelyard`` command line, driven through ``main(argv)`` and as the installed script.

Settings come from the environment, as for a user: the autouse fixture points MODELYARD_HOME at
a temporary folder; the lifecycle tests also set MODELYARD_DATABASE_URL so that they run on
SQLite and on PostgreSQL. Errors must be one "Error:" line plus a "Hint:" line, with the exit
code documented in ``modelyard.cli.errors``, and never a traceback.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import skops.io as sio
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from tests.integration.cli_runner import Result, Run, run_cli

UNREACHABLE = "postgresql://nobody@127.0.0.1:1/none"


@dataclass(frozen=True)
class Files:
    skops: Path
    pickle: Path
    csv: Path  # the iris features and a label column "y"
    text: Path  # a file that is no model


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    folder = tmp_path_factory.mktemp("cli-files")
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    out = Files(skops=folder / "iris.skops", pickle=folder / "iris.pkl",
                csv=folder / "iris.csv", text=folder / "notes.txt")
    sio.dump(model, out.skops)
    with open(out.pickle, "wb") as fh:
        pickle.dump(model, fh)
    X.assign(y=y).to_csv(out.csv, index=False)
    out.text.write_text("not a model\n")
    return out


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``modelyard ARGS...`` in this process; returns the exit code and what it printed."""

    def _run(*args: str | Path) -> Result:
        return run_cli(capsys, *args)

    return _run


@pytest.fixture
def yard(run: Run, files: Files, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Run:
    """A registry on SQLite, then PostgreSQL, with iris registered twice (@production -> 1)."""
    monkeypatch.setenv("MODELYARD_DATABASE_URL", database_url)
    monkeypatch.setenv("MODELYARD_USER", "alice")
    first = run("register", files.skops, "--name", "iris", "--alias", "production")
    assert first.code == 0, first.err
    second = run("register", files.skops, "--name", "iris")
    assert second.code == 0, second.err
    return run


def _aliases(run: Run) -> dict[str, int]:
    shown: dict[str, int] = run("models", "show", "iris", "--json").json()["aliases"]
    return shown


# -- registration and inspection ----------------------------------------------------------------
def test_register_with_data_lineage_and_alias(
    run: Run, files: Files, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELYARD_DATABASE_URL", database_url)
    monkeypatch.setenv("MODELYARD_USER", "alice")
    result = run("register", files.skops, "--name", "iris", "--data", files.csv, "--target", "y",
                 "--alias", "production", "--metric", "acc=0.9", "--param", "C=1",
                 "--tag", "team=x", "--description", "first cut")
    assert result.code == 0, result.err
    assert result.out.strip() == "Registered models:/iris/1 (@production) [sklearn]"
    assert result.err == ""

    version = run("models", "show", "models:/iris/1", "--json").json()
    assert (version["name"], version["version"], version["format"]) == ("iris", 1, "sklearn")
    assert version["aliases"] == ["production"]
    assert version["created_by"] == "alice"
    assert version["description"] == "first cut"
    assert version["tags"] == {"team": "x"}
    assert version["lineage"]["metrics"] == {"acc": 0.9}
    assert version["lineage"]["params"] == {"C": "1"}  # the CLI cannot know it is a number
    assert version["lineage"]["data"]["rows"] == 150
    assert "y" not in version["lineage"]["data"]["schema"]  # --target is left out
    assert version["profile_digest"] is not None
    inputs = [c["name"] for c in version["signature"]["inputs"]["columns"]]
    assert inputs == ["sepal length (cm)", "sepal width (cm)", "petal length (cm)",
                      "petal width (cm)"]

    text = run("models", "show", "models:/iris@production")
    assert text.code == 0
    assert "models:/iris/1  format=sklearn  status=ready  aliases=production" in text.out
    assert "metrics: acc=0.9" in text.out
    assert "params: C=1" in text.out
    assert "data: 150 rows, 4 columns" in text.out


def test_register_json_prints_the_new_version(run: Run, files: Files) -> None:
    version = run("register", files.skops, "--name", "iris", "--json").json()
    assert (version["uri"], version["format"], version["aliases"]) == (
        "models:/iris/1", "sklearn", [])


def test_list_show_and_versions(yard: Run) -> None:
    table = yard("models", "list")
    assert table.code == 0
    assert "iris" in table.out
    assert "production->1" in table.out

    listed = yard("models", "list", "--json").json()
    assert [(m["name"], m["latest_version"], m["aliases"], m["status"]) for m in listed] == [
        ("iris", 2, {"production": 1}, "ready")]

    shown = yard("models", "show", "iris")
    assert shown.code == 0
    assert "iris  status=ready  latest=2" in shown.out
    assert "@production -> version 1" in shown.out
    model = yard("models", "show", "iris", "--json").json()
    assert model["name"] == "iris"
    assert model["latest_version"] == 2

    # A reference to a version shows the version, "latest" included.
    assert yard("models", "show", "models:/iris/latest", "--json").json()["version"] == 2
    assert yard("models", "show", "models:/iris@production", "--json").json()["version"] == 1

    versions = yard("models", "versions", "iris", "--json").json()
    assert [(v["version"], v["format"], v["status"], v["aliases"]) for v in versions] == [
        (1, "sklearn", "ready", ["production"]), (2, "sklearn", "ready", [])]
    assert "sklearn" in yard("models", "versions", "iris").out


def test_empty_registry_says_how_to_start(run: Run, home: Path) -> None:
    result = run("models", "list")
    assert result.code == 0
    assert "No models registered yet" in result.out
    assert run("models", "list", "--json").json() == []
    assert (home / "modelyard.db").is_file()  # the default database lives in MODELYARD_HOME


# -- aliases and life cycle ---------------------------------------------------------------------
def test_alias_set_history_and_delete(yard: Run) -> None:
    moved = yard("alias", "set", "iris", "production", "2", "--reason", "beats v1")
    assert moved.code == 0, moved.err
    assert moved.out.strip() == "iris@production: version 1 -> version 2"
    assert yard("alias", "set", "iris", "staging", "1").code == 0
    assert _aliases(yard) == {"production": 2, "staging": 1}

    history = yard("alias", "history", "iris", "--alias", "production", "--json").json()
    assert [(h["alias"], h["from_version"], h["to_version"], h["actor"], h["reason"])
            for h in history] == [
        ("production", None, 1, "alice", "set at registration"),
        ("production", 1, 2, "alice", "beats v1"),
    ]
    for h in history:
        assert datetime.fromisoformat(h["at"]).tzinfo is not None
    assert len(yard("alias", "history", "iris", "--json").json()) == 3  # staging as well

    removed = yard("alias", "delete", "iris", "staging", "--reason", "done")
    assert removed.code == 0, removed.err
    assert removed.out.strip() == "iris@staging: version 1 -> nothing"
    assert _aliases(yard) == {"production": 2}
    last = yard("alias", "history", "iris", "--alias", "staging", "--json").json()[-1]
    assert (last["from_version"], last["to_version"], last["reason"]) == (1, None, "done")

    table = yard("alias", "history", "iris")
    assert table.code == 0
    assert "beats v1" in table.out


def test_rollback_moves_the_alias_back(yard: Run) -> None:
    assert yard("alias", "set", "iris", "production", "2").code == 0
    result = yard("rollback", "iris")
    assert result.code == 0, result.err
    assert result.out.strip() == "Rolled back iris@production: version 2 -> version 1"
    assert _aliases(yard) == {"production": 1}
    last = yard("alias", "history", "iris", "--json").json()[-1]
    assert (last["from_version"], last["to_version"]) == (2, 1)
    assert last["reason"] == "rollback from version 2"


def test_archive_and_restore(yard: Run) -> None:
    assert yard("archive", "iris", "2").out.strip() == "Archived version 2 of iris."
    statuses = {v["version"]: v["status"] for v in yard("models", "versions", "iris",
                                                        "--json").json()}
    assert statuses == {1: "ready", 2: "archived"}
    assert yard("archive", "iris", "2", "--restore").out.strip() == "Restored version 2 of iris."
    assert yard("models", "show", "models:/iris/2", "--json").json()["status"] == "ready"

    assert yard("archive", "iris").out.strip() == "Archived model iris."
    assert yard("models", "list", "--json").json() == []
    assert [m["status"] for m in yard("models", "list", "--all", "--json").json()] == ["archived"]
    assert yard("archive", "iris", "--restore").code == 0
    assert [m["name"] for m in yard("models", "list", "--json").json()] == ["iris"]


def test_delete_with_yes(yard: Run) -> None:
    result = yard("delete", "iris", "2", "--yes")
    assert result.code == 0, result.err
    assert result.out.strip() == "Deleted version 2 of model 'iris'."
    assert [v["version"] for v in yard("models", "versions", "iris", "--json").json()] == [1]
    assert yard("models", "show", "models:/iris/2").code == 3


@pytest.mark.parametrize(("answer", "code", "left"), [("n\n", 1, [1, 2]), ("\n", 1, [1, 2]),
                                                       ("y\n", 0, [1])],
                         ids=["no", "default-is-no", "yes"])
def test_delete_asks_first(yard: Run, monkeypatch: pytest.MonkeyPatch, answer: str, code: int,
                           left: list[int]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(answer))
    result = yard("delete", "iris", "2")
    assert result.code == code
    assert "Delete version 2 of model 'iris'? [y/N]:" in result.out
    assert ("Nothing deleted." in result.out) is (code == 1)
    assert [v["version"] for v in yard("models", "versions", "iris", "--json").json()] == left


def test_delete_a_whole_model(yard: Run) -> None:
    assert yard("alias", "delete", "iris", "production").code == 0
    assert yard("delete", "iris", "--yes").out.strip() == "Deleted model 'iris'."
    assert yard("models", "list", "--all", "--json").json() == []


# -- the database -------------------------------------------------------------------------------
def test_db_upgrade_and_current(
    run: Run, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELYARD_DATABASE_URL", database_url)
    upgraded = run("db", "upgrade")
    assert upgraded.code == 0, upgraded.err
    assert upgraded.out.startswith("Database at schema revision ")
    assert "None" not in upgraded.out
    assert run("db", "upgrade").out == upgraded.out  # nothing left to do the second time
    current = run("db", "current")
    assert current.code == 0, current.err
    assert current.out == upgraded.out


# -- errors -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Failure:
    args: tuple[str, ...]  # {skops}, {pickle}, {csv}, {text} and {missing} name the test files
    code: int
    message: str  # in the "Error:" line
    registered: bool = False  # register iris (@production -> 1) first
    env: tuple[tuple[str, str], ...] = ()
    hint: bool = True


FAILURES = [
    pytest.param(Failure(("models", "show", "nope"), 3, "no registered model named 'nope'"),
                 id="unknown-model"),
    pytest.param(Failure(("models", "show", "models:/iris/9"), 3,
                         "Version 9 of model 'iris' does not exist", registered=True),
                 id="unknown-version"),
    pytest.param(Failure(("models", "show", "models:/iris@nightly"), 3, "nightly",
                         registered=True), id="unknown-alias"),
    pytest.param(Failure(("register", "{skops}", "--name", "bad name"), 2,
                         "model name must be"), id="bad-name"),
    pytest.param(Failure(("models", "show", "models:/iris/x"), 2,
                         "model reference must look like"), id="bad-reference"),
    pytest.param(Failure(("register", "{skops}", "--name", "iris", "--metric", "acc=high"), 2,
                         "--metric value must be a number", hint=False), id="bad-metric-value"),
    pytest.param(Failure(("register", "{skops}", "--name", "iris", "--metric", "acc"), 2,
                         "The --metric option takes KEY=VALUE"), id="bad-metric-pair"),
    pytest.param(Failure(("register", "{skops}", "--name", "iris", "--alias", "latest"), 2,
                         "'latest' is reserved"), id="reserved-alias"),
    pytest.param(Failure(("register", "{text}", "--name", "iris"), 2,
                         "does not recognise"), id="unsupported-file"),
    pytest.param(Failure(("register", "{missing}", "--name", "iris"), 3,
                         "no file or folder"), id="missing-file"),
    pytest.param(Failure(("register", "{skops}", "--name", "iris", "--data", "{missing}"), 3,
                         "no data file"), id="missing-data-file"),
    pytest.param(Failure(("register", "{skops}", "--name", "iris", "--data", "{text}"), 2,
                         "Unsupported data file type '.txt'"), id="unsupported-data-file"),
    pytest.param(Failure(("register", "{skops}", "--name", "iris", "--data", "{csv}",
                          "--target", "label"), 2, "--target 'label' is not a column",
                         hint=False), id="bad-target"),
    pytest.param(Failure(("register", "{skops}", "--name", "iris", "--data", "{csv}"), 2,
                         "y"), id="data-with-label"),
    pytest.param(Failure(("register", "{pickle}", "--name", "iris"), 1, "is a pickle file"),
                 id="pickle-without-trust"),
    pytest.param(Failure(("models", "list"), 6, "Cannot reach the registry database",
                         env=(("MODELYARD_DATABASE_URL", UNREACHABLE),)),
                 id="unreachable-database"),
    pytest.param(Failure(("db", "current"), 6, "Cannot reach the registry database",
                         env=(("MODELYARD_DATABASE_URL", UNREACHABLE),)),
                 id="unreachable-database-db-current"),
    pytest.param(Failure(("rollback", "iris"), 4, "no earlier version to roll back to",
                         registered=True), id="rollback-without-history"),
    pytest.param(Failure(("delete", "iris", "1", "--yes"), 4, "cannot be deleted",
                         registered=True), id="delete-aliased-version"),
    pytest.param(Failure(("alias", "set", "iris", "production", "7"), 3,
                         "Version 7 of model 'iris' does not exist", registered=True),
                 id="alias-to-unknown-version"),
]


@pytest.mark.parametrize("failure", FAILURES)
def test_errors_are_one_line_with_a_hint_and_an_exit_code(
    failure: Failure, run: Run, files: Files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if failure.registered:
        assert run("register", files.skops, "--name", "iris", "--alias", "production").code == 0
    for key, value in failure.env:
        monkeypatch.setenv(key, value)
    names = {"skops": files.skops, "pickle": files.pickle, "csv": files.csv, "text": files.text,
             "missing": tmp_path / "missing.skops"}
    result = run(*(arg.format(**names) for arg in failure.args))

    assert result.code == failure.code, result.err
    assert "Traceback" not in result.out + result.err
    lines = result.err.splitlines()
    assert lines[0].startswith("Error: "), result.err
    assert failure.message in lines[0]
    if failure.hint:
        assert len(lines) == 2, result.err
        assert lines[1].startswith("Hint: ")
    else:
        assert len(lines) == 1, result.err
    monkeypatch.delenv("MODELYARD_DATABASE_URL", raising=False)
    if failure.registered:  # nothing changed
        assert run("models", "versions", "iris", "--json").json()[0]["aliases"] == ["production"]
        assert len(run("models", "versions", "iris", "--json").json()) == 1
    else:  # nothing was registered
        assert run("models", "list", "--all", "--json").json() == []


def test_trust_pickle_registers_it_as_skops(run: Run, files: Files) -> None:
    result = run("register", files.pickle, "--name", "iris", "--trust-pickle")
    assert result.code == 0, result.err
    assert result.out.strip() == "Registered models:/iris/1 [sklearn]"
    meta = run("models", "show", "models:/iris/1", "--json").json()["runtime_meta"]
    assert meta["file"] == "model.skops"


@pytest.mark.parametrize(
    "args",
    [("register", "{skops}"), ("models", "show"), ("alias", "set", "iris", "production", "0"),
     ("models", "frobnicate")],
    ids=["missing-option", "missing-argument", "version-below-1", "unknown-command"],
)
def test_usage_errors_exit_2(args: tuple[str, ...], run: Run, files: Files) -> None:
    result = run(*(a.format(skops=files.skops) for a in args))
    assert result.code == 2
    assert "Traceback" not in result.out + result.err
    assert "Usage:" in result.out + result.err


def test_user_text_is_not_read_as_markup(run: Run, files: Files) -> None:
    # Square brackets in reasons, params and descriptions are printed as they are.
    assert run("register", files.skops, "--name", "iris", "--param", "grid=[/x]",
               "--description", "see [bold]notes[/]").code == 0
    moved = run("alias", "set", "iris", "production", "1", "--reason", "fixes [/oops]")
    assert moved.code == 0, moved.err
    history = run("alias", "history", "iris")
    assert history.code == 0, history.err
    assert "[/oops]" in history.out
    shown = run("models", "show", "models:/iris/1")
    assert shown.code == 0, shown.err
    assert "params: grid=[/x]" in shown.out


def test_debug_shows_the_traceback(run: Run) -> None:
    from modelyard.errors import NotFoundError

    with pytest.raises(NotFoundError, match="no registered model named 'nope'"):
        run("--debug", "models", "show", "nope")


# -- the installed script -----------------------------------------------------------------------
def test_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "modelyard"
    assert script.is_file(), f"no modelyard console script next to {sys.executable}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["MODELYARD_HOME"] = str(tmp_path / "home")

    helped = subprocess.run([script, "--help"], capture_output=True, text=True, env=env,
                            check=False, timeout=120)
    assert helped.returncode == 0, helped.stderr
    for command in ("register", "models", "alias", "rollback", "archive", "delete", "db"):
        assert command in helped.stdout

    missing = subprocess.run([script, "models", "show", "nope"], capture_output=True, text=True,
                             env=env, check=False, timeout=120)
    assert missing.returncode == 3
    assert "Traceback" not in missing.stderr
    assert missing.stderr.startswith("Error: There is no registered model named 'nope'.")
    assert "Hint: " in missing.stderr
    assert missing.stdout == ""
