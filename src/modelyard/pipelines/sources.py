"""The training frame of a pipeline run, from files, a SQL query or the feedback loop, and the
fingerprint that says exactly which data a run (and the version it made) was trained on.

* ``path``: every file matching a glob (local or any fsspec URI), read in path order and
  concatenated: Parquet, CSV or JSON lines by suffix (or ``format``).
* ``sql``: the result set of ``query`` on a SQLAlchemy ``url``.
* ``feedback``: the model's logged inputs joined with their ground truth
  (:func:`modelyard.monitoring.training_data.training_rows`); the label is column ``label``.

>>> data = load_training_data(spec, client)                        # doctest: +SKIP
>>> data.fingerprint.rows, data.describe()["kind"]                  # doctest: +SKIP
(5000, 'path')
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelyard.core.entities import DataFingerprint
from modelyard.core.fingerprint import fingerprint
from modelyard.errors import InvalidInputError, NotFoundError, StoreUnavailableError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from modelyard._client import Client
    from modelyard.pipelines.spec import DataSpec, PipelineSpec

__all__ = ["DataFile", "TrainingData", "list_files", "load_training_data", "read_labelled_log"]

_GLOB_CHARS = frozenset("*?[")
_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl",
             ".ndjson": "jsonl"}


@dataclass(frozen=True, slots=True)
class DataFile:
    """One file matched by a glob: its full URI and a token that changes when it does."""

    uri: str
    size: int
    token: str
    """Size and modification time (or ETag): a rewritten file counts as new data."""

    modified: float | None = None
    """When it was last written (seconds since the epoch), where the file system says."""


@dataclass(frozen=True)
class TrainingData:
    """A loaded training frame and where it came from."""

    frame: pd.DataFrame
    fingerprint: DataFingerprint
    source: dict[str, Any]
    """What was read: the kind, the glob and the files, the query, or the feedback window."""

    features: list[str] | None = field(default=None)
    """The model inputs the source knows of (feedback: the logged input columns)."""

    def describe(self) -> dict[str, Any]:
        """The JSON a run records as its data: the source and the fingerprint."""
        return {**self.source, "fingerprint": self.fingerprint.to_dict()}


def load_training_data(spec: PipelineSpec, client: Client, *,
                       now: float | None = None) -> TrainingData:
    """Read the spec's data source into a DataFrame and fingerprint it."""
    data = spec.data
    if data.kind == "path":
        assert data.path is not None
        frame, source = _read_files(spec.resolve(data.path), data.format)
        features = None
    elif data.kind == "sql":
        frame, source = _read_sql(spec, data)
        features = None
    else:
        frame, source, features = _read_feedback(data, client,
                                                 time.time() if now is None else now)
    if len(frame) == 0:
        raise InvalidInputError(
            f"The data source of pipeline {spec.name!r} ({_where(source)}) holds no rows.",
            hint="Check the source; a pipeline needs rows to train on.")
    return TrainingData(frame=frame, fingerprint=fingerprint(frame), source=source,
                        features=features)


def _where(source: dict[str, Any]) -> str:
    kind = source["kind"]
    if kind == "path":
        return str(source["path"])
    if kind == "sql":
        return f"query on {source['url']}"
    return f"feedback of {source['model']!r}"


# -- files ------------------------------------------------------------------------------------
def list_files(uri: str) -> list[DataFile]:
    """The files a glob (or a folder, or one file) names, sorted by URI.

    >>> [f.uri for f in list_files("/data/train/*.parquet")]     # doctest: +SKIP
    ['/data/train/a.parquet', '/data/train/b.parquet']
    """
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except (ValueError, ImportError) as exc:
        raise InvalidInputError(f"Cannot open the data location {uri!r}: {exc}",
                                hint="Use a local path or an fsspec URI (s3://bucket/*.csv); "
                                     "remote filesystems need their fsspec package.") from None
    try:
        if any(c in path for c in _GLOB_CHARS):
            infos: dict[str, Any] = fs.glob(path, detail=True)
        elif fs.isdir(path):
            infos = fs.find(path, detail=True)
        elif fs.exists(path):
            infos = {path: fs.info(path)}
        else:
            infos = {}
    except OSError as exc:
        raise StoreUnavailableError(f"Cannot list {uri!r}: {exc}",
                                    hint="Check the location and its credentials.") from exc
    files = []
    for name, info in infos.items():
        if info.get("type", "file") != "file" or name.rsplit("/", 1)[-1].startswith("."):
            continue  # folders, and hidden files (a writer's temporary names)
        size = int(info.get("size") or 0)
        stamp = (info.get("mtime") or info.get("LastModified") or info.get("last_modified")
                 or info.get("ETag") or info.get("etag") or info.get("created") or "")
        full = fs.unstrip_protocol(name) if "://" in uri else name
        files.append(DataFile(uri=full, size=size, token=f"{size}:{stamp}",
                              modified=_seconds(stamp)))
    return sorted(files, key=lambda f: f.uri)


def _seconds(stamp: Any) -> float | None:
    """A file system's modification time as epoch seconds (local: a float; object stores: a
    datetime or ISO text); None for an ETag or nothing."""
    if isinstance(stamp, int | float):
        return float(stamp)
    if isinstance(stamp, dt.datetime):
        return (stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(stamp, str):
        try:
            return _seconds(dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def _read_files(uri: str, fmt: str | None) -> tuple[pd.DataFrame, dict[str, Any]]:
    import fsspec
    import pandas as pd

    files = list_files(uri)
    if not files:
        raise NotFoundError(f"No file matches {uri!r}.",
                            hint="Check the data path of the pipeline (relative paths start "
                                 "at the YAML file's folder).")
    frames = []
    for file in files:
        kind = fmt or _SUFFIXES.get("." + file.uri.rsplit(".", 1)[-1].lower())
        if kind is None:
            raise InvalidInputError(
                f"Cannot tell the format of {file.uri!r} from its suffix.",
                hint="Use .parquet, .csv or .jsonl files, or set data.format.")
        try:
            with fsspec.open(file.uri, "rb") as fh:
                if kind == "parquet":
                    frames.append(pd.read_parquet(fh))
                elif kind == "csv":
                    frames.append(pd.read_csv(fh))
                else:
                    frames.append(pd.read_json(fh, lines=True))
        except (ValueError, OSError) as exc:
            raise InvalidInputError(f"Cannot read {file.uri!r} as {kind}: {exc}",
                                    hint="Check that the file is complete and well formed."
                                    ) from None
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return frame, {"kind": "path", "path": uri,
                   "files": [{"uri": f.uri, "size": f.size} for f in files]}


# -- SQL --------------------------------------------------------------------------------------
def _read_sql(spec: PipelineSpec, data: DataSpec) -> tuple[pd.DataFrame, dict[str, Any]]:
    import pandas as pd
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from modelyard.registry.sql.engine import mask_url

    assert data.sql is not None
    url = data.sql.url
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidInputError(f"data.sql.url {mask_url(url)!r} is not a SQLAlchemy URL.",
                                hint="Write e.g. sqlite:///data.db or "
                                     "postgresql://user@host/db.") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        parsed = parsed.set(database=spec.resolve(str(parsed.database)))
    shown = mask_url(parsed.render_as_string(hide_password=False))
    try:
        engine = create_engine(parsed)
    except (ArgumentError, ModuleNotFoundError) as exc:
        raise InvalidInputError(f"Cannot connect to {shown}: {exc}",
                                hint="Install the database driver the URL names.") from None
    try:
        with engine.connect() as conn:
            frame = pd.read_sql_query(text(data.sql.query), conn)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise InvalidInputError(f"The query of pipeline {spec.name!r} on {shown} failed: "
                                f"{reason}", hint="Check data.sql.query and data.sql.url."
                                ) from None
    finally:
        engine.dispose()
    return frame, {"kind": "sql", "url": shown, "query": data.sql.query}


# -- the feedback loop ------------------------------------------------------------------------
def _read_feedback(data: DataSpec, client: Client, now: float
                   ) -> tuple[pd.DataFrame, dict[str, Any], list[str]]:
    from modelyard.monitoring.training_data import META_COLUMNS, parse_time_bound

    assert data.feedback is not None
    since = parse_time_bound(data.since, now=now)
    until = parse_time_bound(data.until, now=now)
    table = read_labelled_log(client, data.feedback, since=since, until=until,
                              version=data.version)
    frame = table.to_pandas()
    features = [c for c in frame.columns if c not in META_COLUMNS
                and not str(c).startswith(("proba_", "output_"))]
    return frame, {"kind": "feedback", "model": data.feedback, "since": since,
                   "until": until, "version": data.version}, features


def read_labelled_log(client: Client, model: str, *, since: float | None,
                      until: float | None, version: int | None = None,
                      labelled_only: bool = True,
                      progress: Callable[[str], None] | None = None) -> pa.Table:
    """The model's inference log (``since``/``until`` on prediction time) joined with its
    labels (:func:`~modelyard.monitoring.training_data.training_rows`), the probability
    columns named after the classes of the newest version logged. ``progress`` is told
    each step.

    >>> read_labelled_log(client, "fraud", since=None, until=None).num_rows   # doctest: +SKIP
    1250
    """
    import pyarrow.compute as pc

    from modelyard.monitoring.log_store import open_log_store
    from modelyard.monitoring.training_data import training_rows
    from modelyard.security.encryption import keyring_from_settings

    step = progress or (lambda _step: None)
    settings = client.settings
    uri = settings.resolved_log_uri()
    store = open_log_store(uri, engine=client.store.engine if uri == "sql" else None,
                           keyring=keyring_from_settings(settings.security))
    step("reading predictions")
    inferences = store.read_inferences(model, since=since, until=until, version=version)
    # Labels arrive after their predictions: any label recorded from the window's start on.
    step("reading labels")
    labels = store.read_feedback(model, since=since)
    classes = None
    if inferences.num_rows:
        newest = pc.max(inferences.column("version")).as_py()
        try:
            classes = client.get_version(model, int(newest)).runtime_meta.get("classes")
        except NotFoundError:  # the version was deleted since: numbered columns
            classes = None
    step("joining labels")
    return training_rows(inferences, labels, classes=classes, labelled_only=labelled_only)
