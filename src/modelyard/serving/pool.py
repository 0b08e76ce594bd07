"""The models a server holds: one deployment per served name, hot-swapped when its alias moves,
plus explicitly requested versions loaded on demand and evicted least-recently-used.

A deployment that follows an alias also follows the model's active rollout on that alias
(when the source can tell, see :func:`modelyard.serving.source.rollout_source`): its
challenger is loaded beside the champion and kept as ``dep.challenger`` with ``dep.rollout``
and the rollout's live statistics; the data plane routes to it. When the rollout ends, a
promoted challenger becomes the champion without being loaded again, and a rolled back one is
drained and released.

Everything that touches the registry or the disk (resolving an alias, loading a version) runs
in a worker thread, never on the event loop. A swap is one attribute assignment on the event
loop: requests that already hold the old version finish on it, new ones get the new one, and
the old version's batcher is drained before it is closed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelyard.core.entities import ModelVersion
from modelyard.core.references import ModelRef
from modelyard.core.rollout import Decision, Rollout, RolloutState
from modelyard.errors import NotFoundError, PredictionError, UnavailableError
from modelyard.runtimes.model import Model
from modelyard.serving.batcher import Batcher, BatchStats, n_rows
from modelyard.serving.metrics import ServingMetrics
from modelyard.serving.rollout_stats import RolloutStats
from modelyard.serving.source import ModelSource, rollout_source
from modelyard.settings import BatchingSettings, ServingSettings

__all__ = ["Deployment", "DeploymentSpec", "Loaded", "ModelPool"]

log = logging.getLogger("modelyard.serving")


@dataclass(frozen=True, slots=True)
class DeploymentSpec:
    """A model to serve: the name clients use, the reference it follows, and its limits."""

    name: str
    ref: ModelRef
    batching: BatchingSettings = field(default_factory=BatchingSettings)
    replicas: int = 1
    timeout_s: float | None = None
    prefer_onnx: bool | None = None
    """Serve through the version's verified ONNX export (None: the server's setting)."""

    @classmethod
    def from_ref(cls, ref: str | ModelRef, **kwargs: Any) -> DeploymentSpec:
        parsed = ref if isinstance(ref, ModelRef) else ModelRef.parse(ref)
        return cls(name=kwargs.pop("name", None) or parsed.name, ref=parsed, **kwargs)


@dataclass(slots=True)
class Loaded:
    """One loaded version with its batcher."""

    model: Model
    version: ModelVersion
    batcher: Batcher
    outputs: tuple[str, ...]
    load_seconds: float
    served_by: ModelVersion | None = None
    """The ONNX export answering for ``version`` (``serving.prefer_onnx``), if any."""
    reported: bool = False
    """A failure of this version's predict was logged with its traceback (once)."""


@dataclass(slots=True)
class Deployment:
    spec: DeploymentSpec
    current: Loaded | None = None
    error: str | None = None
    rollout: Rollout | None = None
    """The active rollout on this deployment's alias, as last read or decided."""
    challenger: Loaded | None = None
    """The rollout's challenger, once loaded."""
    rollout_stats: RolloutStats | None = None
    rollout_error: str | None = None
    """Why the rollout is not followed (its challenger failed to load...); None when it is."""
    decision: Decision | None = None
    """The rollout controller's last decision on this rollout (``hold`` included)."""
    retry_challenger_at: float = 0.0

    @property
    def follows_rollouts(self) -> bool:
        return self.spec.ref.alias is not None


def _predict_fn(model: Model, *, widen: bool = False) -> Any:
    """The batch predict call of ``model``. ``widen``: return float32 outputs as float64 (an
    ONNX export answering for a scikit-learn version keeps the version's output types)."""
    predictor = model.predictor
    proba = getattr(predictor, "predict_proba", None) if model.has_proba else None
    classes = getattr(predictor, "classes", None)
    # One pass instead of two when the runtime vouches that predict == argmax(proba).
    derive = proba is not None and classes is not None and bool(
        getattr(predictor, "predict_from_proba", False))

    def run(data: Any) -> dict[str, np.ndarray]:
        rows = n_rows(data)
        if derive:
            p = np.asarray(proba(data))  # type: ignore[misc]
            out = {"predict": np.asarray(classes)[p.argmax(axis=1)], "predict_proba": p}
        else:
            out = {"predict": np.asarray(predictor.predict(data))}
            if proba is not None:
                out["predict_proba"] = np.asarray(proba(data))
        if widen:
            out = {k: v.astype(np.float64) if v.dtype == np.float32 else v
                   for k, v in out.items()}
        for name, value in out.items():
            if value.ndim == 0 or value.shape[0] != rows:
                raise PredictionError(
                    f"Model {model.version.uri} returned {name} of shape {list(value.shape)} "
                    f"for {rows} input rows; every output needs one entry per row."
                )
        return out

    return run


class ModelPool:
    """Loads, serves, swaps and evicts model versions."""

    def __init__(self, source: ModelSource, settings: ServingSettings, metrics: ServingMetrics,
                 specs: list[DeploymentSpec]) -> None:
        self.source = source
        self.settings = settings
        self.metrics = metrics
        self.deployments: dict[str, Deployment] = {s.name: Deployment(s) for s in specs}
        self._versions: collections.OrderedDict[tuple[str, int], Loaded] = (
            collections.OrderedDict())
        self._locks: dict[Any, asyncio.Lock] = {}
        self._watch_task: asyncio.Task[None] | None = None
        self._retired: set[asyncio.Task[None]] = set()
        self.rollouts = rollout_source(source)
        self.routed: dict[str, Deployment] = {}
        """Deployments whose traffic a rollout splits: an active rollout, its challenger
        loaded. Empty without rollouts, which keeps the data plane's check one lookup."""

    # -- start, watch, stop ----------------------------------------------------------------
    async def start(self) -> None:
        """Load every deployment (concurrently, in threads); failures are kept per model."""
        await asyncio.gather(*(self._load_deployment(d) for d in self.deployments.values()))
        self._watch_task = asyncio.get_running_loop().create_task(self._watch())

    async def _load_deployment(self, dep: Deployment) -> None:
        try:
            version = await asyncio.to_thread(self.source.resolve, dep.spec.ref)
            dep.current = await self._load(dep.spec, version)
            dep.error = None
        except Exception as exc:  # keep serving the other models; report this one as failed
            dep.error = str(exc)
            log.error("Could not load %s: %s", dep.spec.ref, exc)
            return
        if self.rollouts is not None and dep.follows_rollouts:
            # A server that starts during a rollout takes its share from the first request.
            async with self._locks.setdefault(("dep", dep.spec.name), asyncio.Lock()):
                await self._follow_rollout(dep)

    async def _load(self, spec: DeploymentSpec, version: ModelVersion) -> Loaded:
        started = time.perf_counter()
        twin = await self._onnx_twin(spec, version)
        model = await asyncio.to_thread(self.source.load, (twin or version).uri)
        if twin is not None:
            # Answer as the source version: clients, logs, metrics and rollouts name the version
            # the alias points to; its export only computes the answers (same signature).
            model.version, model.signature = version, version.signature
        seconds = time.perf_counter() - started
        batching = spec.batching
        name = spec.name

        def on_batch(stats: BatchStats) -> None:
            self.metrics.batched(name, stats.size, stats.queue_wait_s)

        batcher = Batcher(
            _predict_fn(model, widen=twin is not None), max_batch_size=batching.max_batch_size,
            max_batch_delay_s=batching.max_batch_delay_ms / 1000.0,
            max_queue=self.settings.max_queue, replicas=spec.replicas, name=name,
            inline_below_s=self.settings.inline_predict_ms / 1000.0,
            on_batch=on_batch,
            timeout_s=(spec.timeout_s if spec.timeout_s is not None
                       else self.settings.request_timeout_s),
        )
        outputs = ("predict", "predict_proba") if model.has_proba else ("predict",)
        self.metrics.load_seconds.labels(name, str(version.version)).set(seconds)
        self.metrics.loaded.labels(name, str(version.version)).set(1)
        if twin is not None:
            log.info("Loaded %s as %r through its ONNX export %s in %.2f s", version.uri, name,
                     twin.uri, seconds)
        else:
            log.info("Loaded %s as %r in %.2f s", version.uri, name, seconds)
        return Loaded(model, version, batcher, outputs, seconds, served_by=twin)

    async def _onnx_twin(self, spec: DeploymentSpec, version: ModelVersion
                         ) -> ModelVersion | None:
        prefer = spec.prefer_onnx if spec.prefer_onnx is not None else self.settings.prefer_onnx
        finder = getattr(self.source, "onnx_twin", None)
        if not prefer or version.format != "sklearn" or finder is None:
            return None
        twin: ModelVersion | None = await asyncio.to_thread(finder, version)
        return twin

    async def _watch(self) -> None:
        """Follow aliases: when one moves, load the new version and swap it in."""
        while True:
            await asyncio.sleep(self.settings.alias_poll_s)
            for dep in list(self.deployments.values()):
                if dep.spec.ref.version is not None and dep.current is not None:
                    continue
                try:
                    await self.refresh(dep.spec.name)
                except Exception as exc:  # the registry may be briefly unreachable
                    # The reason shows in the repository index (the old version, if any, keeps
                    # serving) and in the log once, not on every poll.
                    kept = dep.current
                    reason = str(exc) if kept is None else (
                        f"Kept version {kept.version.version}: {exc}")
                    if reason != dep.error:
                        log.warning("Could not refresh %s: %s", dep.spec.ref, reason)
                    dep.error = reason

    async def refresh(self, name: str) -> bool:
        """Re-resolve a deployment's reference; swap if it points elsewhere, and follow the
        model's active rollout on the deployment's alias. True if swapped."""
        dep = self.deployment(name)
        lock = self._locks.setdefault(("dep", name), asyncio.Lock())
        async with lock:
            version = await asyncio.to_thread(self.source.resolve, dep.spec.ref)
            old = dep.current
            swapped = False
            if old is not None and old.version.version == version.version:
                dep.error = None  # serving what the reference points to (again)
            else:
                challenger = dep.challenger
                if challenger is not None and challenger.version.version == version.version:
                    # The alias moved to the loaded challenger (a promotion): no reload.
                    new, dep.challenger = challenger, None
                else:
                    new = await self._load(dep.spec, version)
                dep.current, dep.error = new, None  # the swap: atomic on the event loop
                self._route(dep)  # before the next await: requests must not see a half-state
                swapped = True
                if old is not None:
                    self.metrics.swaps.labels(name).inc()
                    log.info("Swapped %r: version %s -> %s", name, old.version.version,
                             version.version)
                    self._retire(old)
            if self.rollouts is not None and dep.follows_rollouts:
                await self._follow_rollout(dep)
            else:
                self._route(dep)
            return swapped

    # -- rollouts ----------------------------------------------------------------------------
    async def apply_rollout(self, name: str, rollout: Rollout | None) -> None:
        """Follow ``rollout`` (as a decision left it, or None: there is none) at once, without
        waiting for the next poll: advance, promote (the loaded challenger becomes the
        champion) or end (the challenger is drained and released)."""
        dep = self.deployments.get(name)
        if dep is None:
            return
        async with self._locks.setdefault(("dep", name), asyncio.Lock()):
            await self._apply_rollout(dep, rollout)

    async def _follow_rollout(self, dep: Deployment) -> None:
        assert self.rollouts is not None
        try:
            rollout = await asyncio.to_thread(self.rollouts.active_rollout, dep.spec.ref.name)
        except Exception as exc:  # the registry may be briefly unreachable: keep the state
            reason = f"Could not read the rollout of {dep.spec.ref.name!r}: {exc}"
            if reason != dep.rollout_error:
                log.warning("%s", reason)
            dep.rollout_error = reason
            return
        await self._apply_rollout(dep, rollout)

    async def _apply_rollout(self, dep: Deployment, rollout: Rollout | None) -> None:
        name = dep.spec.name
        mine = (rollout is not None and dep.follows_rollouts
                and rollout.alias == dep.spec.ref.alias and rollout.name == dep.spec.ref.name)
        if rollout is None or not mine or not rollout.active:
            challenger = dep.challenger
            if (mine and rollout is not None and rollout.state == RolloutState.PROMOTED
                    and challenger is not None
                    and challenger.version.version == rollout.challenger):
                # The champion alias now points to the challenger: swap it in, loaded.
                old, dep.current, dep.challenger = dep.current, challenger, None
                self.metrics.swaps.labels(name).inc()
                log.info("Promoted %r: version %s -> %s (rollout #%s)", name,
                         old.version.version if old else None, challenger.version.version,
                         rollout.id)
                if old is not None:
                    self._retire(old)
            self._end_rollout(dep)
            return
        if dep.rollout is None or dep.rollout.id != rollout.id:
            log.info("Following rollout #%s of %r: %s of version %s against version %s",
                     rollout.id, name, rollout.mode, rollout.challenger, rollout.champion)
            if dep.challenger is not None and (
                    dep.challenger.version.version != rollout.challenger):
                self._retire(dep.challenger)
                dep.challenger = None
                self._route(dep)
            dep.rollout_stats = RolloutStats(rollout_id=rollout.id, champion=rollout.champion,
                                             challenger=rollout.challenger)
            dep.decision, dep.rollout_error, dep.retry_challenger_at = None, None, 0.0
        dep.rollout = rollout
        current = dep.current
        if current is not None and current.version.version == rollout.challenger:
            # Someone pointed the alias at the challenger by hand: nothing left to split.
            self._route(dep)
            return
        if dep.challenger is None and time.monotonic() >= dep.retry_challenger_at:
            await self._load_challenger(dep, rollout)
        self._route(dep)

    async def _load_challenger(self, dep: Deployment, rollout: Rollout) -> None:
        try:
            version = await asyncio.to_thread(
                self.source.resolve, ModelRef(dep.spec.ref.name, version=rollout.challenger))
            loaded = await self._load(dep.spec, version)
        except Exception as exc:  # the champion keeps serving everything
            dep.rollout_error = (
                f"The challenger, version {rollout.challenger} of rollout #{rollout.id}, "
                f"failed to load: {exc}; the champion answers every request.")
            # Not on every poll: loading may be expensive, and most failures are permanent.
            dep.retry_challenger_at = time.monotonic() + max(30.0,
                                                             10 * self.settings.alias_poll_s)
            log.error("%s", dep.rollout_error)
            return
        if dep.rollout is None or dep.rollout.id != rollout.id:
            self._retire(loaded)  # the rollout ended while its challenger loaded
            return
        dep.challenger, dep.rollout_error = loaded, None

    def _end_rollout(self, dep: Deployment) -> None:
        if dep.rollout is not None:
            log.info("Rollout #%s of %r is over", dep.rollout.id, dep.spec.name)
        if dep.challenger is not None:
            self._retire(dep.challenger)  # drained first: requests on it finish there
        dep.rollout = dep.challenger = dep.rollout_stats = dep.decision = None
        dep.rollout_error = None
        self._route(dep)

    def _route(self, dep: Deployment) -> None:
        """Keep :attr:`routed` and the weight gauge in step with the deployment."""
        name = dep.spec.name
        rollout = dep.rollout
        if (rollout is not None and dep.challenger is not None and dep.current is not None
                and dep.rollout_stats is not None):
            self.routed[name] = dep
            self.metrics.rollout_weight.labels(name).set(rollout.weight)
        elif self.routed.pop(name, None) is not None or rollout is not None:
            self.metrics.rollout_weight.labels(name).set(0.0)

    def _retire(self, loaded: Loaded) -> None:
        async def retire() -> None:
            await loaded.batcher.drain(timeout=self.settings.request_timeout_s)
            loaded.batcher.close()
            self.metrics.loaded.labels(loaded.batcher.name, str(loaded.version.version)).set(0)

        task = asyncio.get_running_loop().create_task(retire())
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop watching, let every in-flight request finish, then release the models."""
        if self._watch_task is not None:
            self._watch_task.cancel()
        everything = [d.current for d in self.deployments.values() if d.current is not None]
        everything += [d.challenger for d in self.deployments.values()
                       if d.challenger is not None]
        everything += list(self._versions.values())
        await asyncio.gather(*(x.batcher.drain(timeout) for x in everything))
        for x in everything:
            x.batcher.close()

    # -- lookup ------------------------------------------------------------------------------
    def deployment(self, name: str) -> Deployment:
        dep = self.deployments.get(name)
        if dep is None:
            raise NotFoundError(
                f"This server does not serve a model named {name!r}; it serves "
                f"{sorted(self.deployments) or 'no models'}.",
                hint="Load it through POST /v2/repository/models/{name}/load.",
            )
        return dep

    def get(self, name: str) -> Loaded:
        """The version a deployment currently serves (no I/O: the request fast path)."""
        dep = self.deployment(name)
        if dep.current is None:
            state = f"failed to load: {dep.error}" if dep.error else "still loading"
            raise UnavailableError(f"Model {name!r} is {state}.",
                                   hint="Retry shortly; GET /v2/models/{name}/ready tells.")
        return dep.current

    async def get_version(self, name: str, version: int) -> Loaded:
        """An explicit version: the deployment's own, a cached one, or loaded on demand."""
        dep = self.deployment(name)
        if dep.current is not None and dep.current.version.version == version:
            return self.get(name)
        if dep.challenger is not None and dep.challenger.version.version == version:
            return dep.challenger
        key = (name, version)
        cached = self._versions.get(key)
        if cached is None:
            lock = self._locks.setdefault(key, asyncio.Lock())
            async with lock:
                cached = self._versions.get(key)
                if cached is None:
                    mv = await asyncio.to_thread(
                        self.source.resolve, ModelRef(dep.spec.ref.name, version=version))
                    cached = await self._load(dep.spec, mv)
                    self._versions[key] = cached
                    self._evict()
        self._versions.move_to_end(key)  # least recently used first: evicted first
        return cached

    def _evict(self) -> None:
        budget = self.settings.memory_budget_mb * 1024 * 1024
        # Artifact size stands in for resident size: cheap, and proportional for most formats.
        while len(self._versions) > 1 and sum(
            x.version.size_bytes for x in self._versions.values()) > budget:
            _, oldest = self._versions.popitem(last=False)
            self._retire(oldest)

    def has_version(self, name: str, version: int) -> bool:
        """True if ``version`` of ``name`` is loaded (as the deployment's or on demand)."""
        dep = self.deployment(name)
        for loaded in (dep.current, dep.challenger):
            if loaded is not None and loaded.version.version == version:
                return True
        return (name, version) in self._versions

    def is_ready(self, name: str | None = None) -> bool:
        if name is None:
            return all(d.current is not None for d in self.deployments.values())
        return self.deployment(name).current is not None

    # -- repository extension ------------------------------------------------------------------
    async def add(self, spec: DeploymentSpec) -> Deployment:
        dep = self.deployments.get(spec.name)
        if dep is None:
            dep = self.deployments[spec.name] = Deployment(spec)
        if dep.current is None:
            await self._load_deployment(dep)
        if dep.current is None:
            del self.deployments[spec.name]
            raise NotFoundError(f"Could not load {spec.ref}: {dep.error}")
        return dep

    async def remove(self, name: str) -> None:
        dep = self.deployment(name)
        del self.deployments[name]
        self._end_rollout(dep)
        if dep.current is not None:
            self._retire(dep.current)
        for key in [k for k in self._versions if k[0] == name]:
            self._retire(self._versions.pop(key))
