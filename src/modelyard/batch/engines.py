"""Engines: who reads the chunks and runs the scorer. Both hand scored rows, in input order, to
the job, which writes and checkpoints them; so both produce the same output file.

- :class:`LocalEngine` streams the file in this process. One background thread reads the next
  chunk while the current one is scored and written (pyarrow parses and writes without the
  GIL, so the two overlap on two cores); ``workers > 1`` adds a thread pool that scores
  several chunks at once (results still committed in order). Threads, not processes: a
  process pool would pickle every chunk both ways and load the model once per process, and
  the work that dominates (parsing, writing, BLAS) already runs outside the GIL. The numbers
  that decided this are in docs/batch.md.
- :class:`RayEngine` runs the same :class:`~modelyard.batch.scoring.ChunkScorer` through Ray
  Data: ``read_csv``/``read_parquet``/``read_text`` and ``map_batches`` on an actor pool, with
  order preserved, on a local Ray instance or a cluster (``ray.init(address=...)``).

A value the fast typed read cannot convert (``abc`` in a float column) makes the local engine
read again from the last committed row in lenient mode, where the model's numeric columns
arrive as text and the scorer judges each value. The Ray engine reads CSV leniently from the
start (Ray reports a failed read without pyarrow's reason, and logs it loudly): it parses
those columns in the scorer, which gives the same values.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import queue
import re
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

from modelyard import errors
from modelyard.batch.readers import CSV_BLOCK_BYTES, ConversionError, InputFile, csv_options
from modelyard.batch.scoring import ChunkScorer, ScoringPlan, arrow_types
from modelyard.errors import (
    ConfigurationError,
    DependencyMissingError,
    InvalidInputError,
    ModelyardError,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from modelyard.runtimes.model import Model

__all__ = ["ChunkSink", "Engine", "LocalEngine", "ModelLoader", "RayEngine"]


class ChunkSink(Protocol):
    """Where an engine delivers scored rows (the job's collector)."""

    @property
    def rows_done(self) -> int:
        """Rows committed so far: an engine starts (and restarts) reading there."""
        ...

    def add(self, table: pa.Table) -> None:
        """Scored rows that follow the ones delivered before."""
        ...


class Engine(Protocol):
    """Reads ``source`` from ``sink.rows_done`` on, scores it and delivers it in order."""

    name: str

    def run(self, source: InputFile, model: Model, plan: ScoringPlan, chunk_rows: int,
            sink: ChunkSink) -> None: ...


class ModelLoader(Protocol):
    """Loads the model inside a Ray worker (when the loaded model cannot be pickled)."""

    def __call__(self) -> Model: ...


def _read_columns(plan: ScoringPlan) -> list[str]:
    return list(dict.fromkeys(plan.features + plan.passthrough))


# -- local -------------------------------------------------------------------------------------
class LocalEngine:
    """Scores in this process: a reader thread, and ``workers`` scoring threads.

    >>> run_batch(model, "in.csv", "out.parquet", engine=LocalEngine(workers=2))  # doctest: +SKIP
    """

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise InvalidInputError(f"workers must be at least 1. Got {workers} instead.")
        self.workers = workers

    def run(self, source: InputFile, model: Model, plan: ScoringPlan, chunk_rows: int,
            sink: ChunkSink) -> None:
        """Score ``source`` from ``sink.rows_done`` on; re-read leniently once a value fails
        the typed read."""
        scorer = ChunkScorer(model, plan)
        lenient = False
        while True:
            chunks = source.chunks(chunk_rows, start_row=sink.rows_done,
                                   columns=_read_columns(plan),
                                   types=arrow_types(model, lenient=lenient))
            try:
                self._drive(chunks, scorer, sink)
                return
            except ConversionError:
                if lenient:
                    raise
                lenient = True

    def _drive(self, chunks: Iterator[pa.Table], scorer: ChunkScorer, sink: ChunkSink) -> None:
        with _Prefetch(chunks, depth=1) as ahead:
            if self.workers == 1:
                for chunk in ahead:
                    sink.add(scorer(chunk))
                return
            with ThreadPoolExecutor(self.workers, thread_name_prefix="modelyard-batch") as pool:
                window: deque[Future[pa.Table]] = deque()
                try:
                    for chunk in ahead:
                        window.append(pool.submit(scorer, chunk))
                        if len(window) > self.workers:
                            sink.add(window.popleft().result())
                    while window:
                        sink.add(window.popleft().result())
                finally:
                    for future in window:
                        future.cancel()


class _Prefetch:
    """Iterate ``items`` in a background thread, at most ``depth`` ahead of the consumer."""

    _DONE = object()

    def __init__(self, items: Iterator[Any], depth: int) -> None:
        self._items = items
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="modelyard-batch-read",
                                        daemon=True)

    def __enter__(self) -> _Prefetch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:  # unblock a producer waiting on a full queue
                self._queue.get_nowait()
        self._thread.join()

    def _produce(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
            self._put(self._DONE)
        except BaseException as exc:  # handed to the consumer, re-raised there
            self._put(_Failure(exc))
        finally:
            close = getattr(self._items, "close", None)
            if callable(close):
                close()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


# -- Ray ---------------------------------------------------------------------------------------
class _Shipped:
    """The loaded model itself, pickled once into Ray's object store."""

    def __init__(self, model: Model) -> None:
        self.model = model

    def __call__(self) -> Model:
        return self.model


class _RayScorer:
    """The actor class ``map_batches`` runs: loads the model once, scores every batch."""

    def __init__(self, loader: Callable[[], Model], plan: ScoringPlan) -> None:
        self.scorer = ChunkScorer(loader(), plan)

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.scorer(batch)


class _JsonLines:
    """``read_text`` rows -> the same tables the local JSON-lines reader makes."""

    def __init__(self, types: dict[str, pa.DataType], columns: list[str]) -> None:
        self.types = types
        self.columns = columns

    def __call__(self, batch: pa.Table) -> pa.Table:
        from modelyard.batch.readers import _select, parse_json_lines

        lines = [t.encode() for t in batch.column("text").to_pylist()
                 if t is not None and t.strip()]
        return _select(parse_json_lines(lines, self.types), self.columns)


class RayEngine:
    """Scores through Ray Data on the connected Ray cluster (or a new local instance).

    ``workers`` is the largest number of scoring actors (default: the cluster's CPUs);
    each reserves ``cpus_per_worker``. The loaded model is shipped to the actors; a model
    that cannot be pickled is loaded in each actor by ``loader`` instead.

    >>> import ray; ray.init(num_cpus=2)                              # doctest: +SKIP
    >>> run_batch(model, "in.parquet", "out.parquet", engine=RayEngine())  # doctest: +SKIP
    """

    name = "ray"

    def __init__(self, workers: int | None = None, *, address: str | None = None,
                 cpus_per_worker: float = 1.0, loader: ModelLoader | None = None) -> None:
        if workers is not None and workers < 1:
            raise InvalidInputError(f"workers must be at least 1. Got {workers} instead.")
        self.workers = workers
        self.address = address
        self.cpus_per_worker = cpus_per_worker
        self.loader = loader

    def run(self, source: InputFile, model: Model, plan: ScoringPlan, chunk_rows: int,
            sink: ChunkSink) -> None:
        """Score ``source`` through Ray Data; rows are delivered in input order."""
        with _quiet_ray() as ray:
            if not ray.is_initialized():
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.WARNING)
            loader = self._loader(model)
            try:
                self._drive(ray, source, plan, chunk_rows, sink, loader,
                            arrow_types(model, lenient=True))
            except Exception as exc:
                cause = _unwrap(exc)
                if cause is not None and cause is not exc:
                    raise cause from None
                raise

    def _loader(self, model: Model) -> Callable[[], Model]:
        try:
            pickle.dumps(model)
        except Exception as exc:
            if self.loader is not None:
                return self.loader
            raise ConfigurationError(
                f"{model.version.uri} ({model.version.format}) cannot be shipped to Ray "
                f"workers: {type(exc).__name__}: {exc}",
                hint="Pass a loader that loads the model inside each worker.") from None
        return _Shipped(model)

    def _drive(self, ray: Any, source: InputFile, plan: ScoringPlan, chunk_rows: int,
               sink: ChunkSink, loader: Callable[[], Model],
               types: dict[str, pa.DataType]) -> None:
        context = ray.data.DataContext.get_current()
        saved = (context.execution_options.preserve_order, context.enable_progress_bars,
                 context.print_on_execution_start)
        context.execution_options.preserve_order = True  # rows come back in input order
        context.enable_progress_bars = False  # the CLI draws its own
        context.print_on_execution_start = False
        try:
            ds = self._read(ray, source, plan, chunk_rows, types)
            workers = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
            ds = ds.map_batches(
                _RayScorer, fn_constructor_args=(loader, plan), batch_size=chunk_rows,
                batch_format="pyarrow", num_cpus=self.cpus_per_worker,
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=workers))
            skip = sink.rows_done  # Ray Data has no row offset: re-score, keep only new rows
            for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                if skip >= batch.num_rows:
                    skip -= batch.num_rows
                    continue
                sink.add(batch.slice(skip) if skip else batch)
                skip = 0
        finally:
            (context.execution_options.preserve_order, context.enable_progress_bars,
             context.print_on_execution_start) = saved

    def _read(self, ray: Any, source: InputFile, plan: ScoringPlan, chunk_rows: int,
              types: dict[str, pa.DataType]) -> Any:
        columns = _read_columns(plan)
        path = str(source.path)
        if source.format == "parquet":
            return ray.data.read_parquet(path, columns=columns)
        if source.format == "csv":
            import pyarrow.csv as pcsv

            return ray.data.read_csv(
                path, read_options=pcsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
                convert_options=csv_options(types, columns))
        return ray.data.read_text(path).map_batches(
            _JsonLines(types, columns), batch_size=chunk_rows, batch_format="pyarrow")


@contextlib.contextmanager
def _quiet_ray() -> Iterator[Any]:
    """Import Ray with its deprecation and tuning warnings and INFO logs silenced (they are
    not the user's business here, and would fail test runs that turn warnings into errors)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"ray(\.|$)")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        try:
            import ray
            import ray.data
        except ImportError:
            raise DependencyMissingError("ray", "ray", "The Ray batch engine") from None
        logger = logging.getLogger("ray.data")  # configured by its import: set it after
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            yield ray
        finally:
            logger.setLevel(level)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [current.__cause__, current.__context__, getattr(current, "cause", None)]


_REMOTE_ERROR = re.compile(r"^modelyard\.errors\.(\w+): (.+)$", re.MULTILINE)


def _unwrap(exc: BaseException) -> ModelyardError | None:
    """The modelyard error behind a Ray task error. Ray re-raises an actor's exception
    wrapped, and for map_batches only as text (its traceback): rebuilt from the last
    ``modelyard.errors.X: message`` line, so the CLI shows one line, not a Ray traceback."""
    for current in _chain(exc):
        if isinstance(current, ModelyardError) and type(current).__module__.startswith(
                "modelyard."):
            return current
    found = _REMOTE_ERROR.findall(_text(exc))
    if not found:
        return None
    name, message = found[-1]
    kind = getattr(errors, name, None)
    if isinstance(kind, type) and issubclass(kind, ModelyardError):
        try:
            return kind(message)
        except TypeError:  # an error whose constructor takes fields, not a message
            return ModelyardError(message)
    return None


def _text(exc: BaseException) -> str:
    return " | ".join(str(e) for e in _chain(exc))
