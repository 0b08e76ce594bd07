"""``modelyard batch REF INPUT -o OUTPUT``: score a file with a registered model."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from modelyard.cli.context import State
from modelyard.cli.render import console, err_console, print_json
from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    from rich.progress import Progress

    from modelyard.batch import BatchResult, Engine, ProgressCallback
    from modelyard.runtimes.model import Model
    from modelyard.settings import Settings

__all__ = ["RegistryLoader", "batch"]

_ENGINES = ("local", "ray")
_ON_ERROR = ("fail", "skip", "quarantine")


def batch(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="The model: models:/NAME@production, models:/NAME/3."),
    input: Path = typer.Argument(..., help="The rows to score: .csv, .parquet or .jsonl."),
    output: Path = typer.Option(..., "--output", "-o",
                                help="Where the scores go: .csv, .parquet or .jsonl."),
    engine: str = typer.Option("local", "--engine", help="local, or ray (Ray Data)."),
    chunk_rows: int = typer.Option(100_000, "--chunk-rows", min=1,
                                   help="Rows read, scored, written and resumed at once."),
    workers: int | None = typer.Option(
        None, "--workers", min=1,
        help="Scoring threads (local, default 1) or most Ray actors (default: Ray's CPUs)."),
    on_error: str = typer.Option(
        "fail", "--on-error",
        help="Rows that break the signature: fail, skip (counted), or quarantine (counted and "
             "written with the reason to --quarantine)."),
    id_column: str | None = typer.Option(None, "--id-column",
                                         help="Input column copied to the output first."),
    keep: list[str] | None = typer.Option(None, "--keep",
                                          help="More input columns to copy (repeatable)."),
    quarantine: Path | None = typer.Option(
        None, "--quarantine", help="Quarantine file (default: OUTPUT_STEM.quarantine.jsonl)."),
    restart: bool = typer.Option(False, "--restart",
                                 help="Discard an interrupted run instead of resuming it."),
    log: bool = typer.Option(False, "--log",
                             help="Record the predictions in the inference log (route 'batch')."),
    json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Score a CSV, Parquet or JSON-lines file in chunks; memory stays flat whatever its size.

    The output keeps --id-column and --keep columns, and adds row, prediction,
    probability_<class> (classifiers) and model_version. An interrupted run resumes after its
    last completed chunk when run again; the output appears only when complete.

    Example: modelyard batch models:/fraud@production today.csv -o scores.parquet --id-column id
    """
    from modelyard.batch import BatchOptions, run_batch

    if engine not in _ENGINES:
        raise InvalidInputError(f"--engine must be one of {list(_ENGINES)}. Got {engine!r}.",
                                hint="Use --engine local or --engine ray.")
    if on_error not in _ON_ERROR:
        raise InvalidInputError(
            f"--on-error must be one of {list(_ON_ERROR)}. Got {on_error!r}.",
            hint="Use --on-error quarantine to set bad rows aside with the reason.")
    options = BatchOptions(chunk_rows=chunk_rows, on_error=on_error,  # type: ignore[arg-type]
                           id_column=id_column, keep=tuple(keep or ()), quarantine=quarantine,
                           restart=restart)
    state: State = ctx.obj
    settings = state.settings
    client = state.client()
    from modelyard.cli.sign import serving_source

    loaded = serving_source(settings, client).load(model)
    runner = _engine(engine, workers, settings, loaded.version.uri)
    sink = _inference_log(settings, client, loaded) if log else None
    try:
        with _progress(loaded.version.uri, enabled=not json) as update:
            result = run_batch(loaded, input, output, options=options, engine=runner,
                               sink=sink, progress=update)
    finally:
        if sink is not None:
            sink.close()
    if json:
        print_json(result.to_dict())
        return
    _summary(result)


def _engine(name: str, workers: int | None, settings: Settings, uri: str) -> Engine:
    from modelyard.batch import LocalEngine, RayEngine

    if name == "ray":
        return RayEngine(workers, loader=RegistryLoader(settings, uri))
    return LocalEngine(workers or 1)


class RegistryLoader:
    """Loads a version from the registry inside a Ray worker (for models that cannot be
    pickled): the workers need to reach the registry database and artifacts."""

    def __init__(self, settings: Settings, uri: str) -> None:
        self.settings = settings
        self.uri = uri

    def __call__(self) -> Model:
        from modelyard._client import Client

        return Client(self.settings).load(self.uri)


def _inference_log(settings: Settings, client: Any, model: Model) -> Any:
    """The inference log ``serve`` writes to, with the same sensitive-column handling; every
    chunk is logged (the sample rate is for live traffic)."""
    from modelyard.monitoring.inference_log import open_inference_log
    from modelyard.monitoring.sensitive import HMAC_KEY_FILE, SensitiveColumns, load_hmac_key
    from modelyard.security.encryption import keyring_from_settings

    uri = settings.resolved_log_uri()
    monitoring = settings.monitoring.model_copy(update={"log_sample_rate": 1.0})
    signature = model.signature
    return open_inference_log(
        monitoring, uri, engine=client.store.engine if uri == "sql" else None,
        keyring=keyring_from_settings(settings.security),
        sensitive_columns=SensitiveColumns(lambda name, version: signature),
        sensitive_mode=settings.security.sensitive,
        hmac_key=lambda: load_hmac_key(settings.home / HMAC_KEY_FILE))


@contextlib.contextmanager
def _progress(uri: str, *, enabled: bool) -> Iterator[ProgressCallback | None]:
    """A rich progress bar on stderr (rows, rows/s, ETA) when stderr is a terminal."""
    if not (enabled and err_console.is_terminal):
        yield None
        return
    bar = progress_bar()
    task = bar.add_task(f"Scoring with {uri}", total=None)

    def update(done: int, total: int | None) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        yield update


def progress_bar(console: Any = None, get_time: Callable[[], float] | None = None) -> Progress:
    """The batch progress bar: description, bar, rows done of total, rows/s, ETA."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RowsPerSecond(ProgressColumn):  # type: ignore[misc]
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text("-- rows/s" if speed is None else f"{speed:,.0f} rows/s")

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("rows"), RowsPerSecond(), TimeRemainingColumn(),
                    console=console or err_console, transient=True, get_time=get_time)


def _summary(result: BatchResult) -> None:
    resumed = (f" (resumed after row {result.resumed_from:,})" if result.resumed_from else "")
    parts = [f"{result.scored:,} written to {result.output}"]
    if result.quarantined or result.quarantine is not None:
        parts.append(f"{result.quarantined:,} quarantined in {result.quarantine}")
    if result.skipped:
        parts.append(f"{result.skipped:,} skipped")
    console.print(
        f"Scored {result.rows:,} rows with {result.model} ({result.engine}) in "
        f"{result.seconds:.1f} s, {result.rows_per_second:,.0f} rows/s{resumed}: "
        f"{', '.join(parts)}.", markup=False, soft_wrap=True)
