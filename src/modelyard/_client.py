"""The Client: one object for every registry operation, wiring store, artifacts and runtimes.

Registration is ordered so that a crash at any point leaves nothing half-visible: the model is
saved and checked in a temporary folder, its files go to the content-addressed artifact store
(blobs nobody references yet are invisible), and only then one database transaction allocates
the version number and inserts the version.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.core.entities import AliasChange, Lineage, ModelVersion, RegisteredModel, Status
from modelyard.core.fingerprint import fingerprint
from modelyard.core.names import validate_alias, validate_model_name
from modelyard.core.references import ModelRef
from modelyard.core.signature import Signature, infer_schema
from modelyard.core.tabular import as_columns, is_table
from modelyard.errors import InvalidInputError, ModelyardError, NotFoundError, PredictionError
from modelyard.monitoring.profile import (
    ReferenceProfile,
    compute_profile,
    read_profile,
    read_reference_sample,
    write_profile,
)
from modelyard.registry.artifacts import ArtifactStore
from modelyard.registry.provenance import detect_code_version
from modelyard.registry.sql import NewVersion, SqlRegistryStore
from modelyard.runtimes.base import LoadOptions, SaveOptions
from modelyard.runtimes.catalog import RuntimeCatalog
from modelyard.runtimes.model import Model
from modelyard.settings import Settings

if TYPE_CHECKING:  # signing imports cryptography: only when a command signs
    from modelyard.core.rollout import Decision, Rollout, RolloutPolicy
    from modelyard.registry.sql.rollout_store import SqlRolloutStore
    from modelyard.security.signing import TrustedKeys, VersionSignature

__all__ = ["Client"]

_CHECK_ROWS = 100  # rows of the registration data predicted to check the saved model works


class Client:
    """Register, find, load, alias and retire models.

    >>> import modelyard
    >>> client = modelyard.Client()                                    # doctest: +SKIP
    >>> mv = client.register(model, name="fraud", data=X_val)          # doctest: +SKIP
    >>> client.set_alias("fraud", "production", mv.version)            # doctest: +SKIP
    >>> client.load("models:/fraud@production").predict(X_val[:5])    # doctest: +SKIP
    """

    def __init__(self, settings: Settings | None = None, *,
                 catalog: RuntimeCatalog | None = None) -> None:
        self.settings = settings or Settings()
        self.catalog = catalog or RuntimeCatalog()
        self._store: SqlRegistryStore | None = None
        self._artifacts: ArtifactStore | None = None

    @property
    def store(self) -> SqlRegistryStore:
        if self._store is None:
            self._store = SqlRegistryStore(
                self.settings.resolved_database_url(),
                busy_timeout_s=self.settings.registry.busy_timeout_s,
            )
        return self._store

    @property
    def artifacts(self) -> ArtifactStore:
        if self._artifacts is None:
            from modelyard.security.encryption import keyring_from_settings

            self._artifacts = ArtifactStore(self.settings.resolved_artifact_uri(),
                                            keyring=keyring_from_settings(self.settings.security))
        return self._artifacts

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- registration ----------------------------------------------------------------------
    def register(
        self,
        model: Any,
        name: str,
        *,
        data: Any = None,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        description: str = "",
        alias: str | None = None,
        parent: int | None = None,
        signature: Signature | None = None,
        format: str | None = None,
        trusted_types: Sequence[str] = (),
        trust_pickle: bool = False,
        artifacts: Mapping[str, str] | None = None,
        code_paths: Sequence[str] = (),
        code_dir: str | Path | None = None,
        sensitive: Sequence[str] = (),
    ) -> ModelVersion:
        """Register ``model`` (an object, or a path to a saved model) as a new version of ``name``.

        ``data`` (training or validation inputs) gives the signature, the data fingerprint and
        the reference profile that monitoring compares live traffic against. The saved model is
        loaded back and asked to predict on the first rows before anything is stored.
        ``sensitive`` names input columns that never reach the inference log in clear (dropped
        or keyed-hashed, by ``settings.security.sensitive``).

        >>> mv = client.register(clf, name="iris", data=X, metrics={"acc": 0.97})  # doctest: +SKIP
        """
        validate_model_name(name)
        if alias is not None:
            validate_alias(alias)
        metrics_clean = _metrics(metrics)
        options = SaveOptions(
            sample_input=data, trust_pickle=trust_pickle, trusted_types=tuple(trusted_types),
            artifacts={str(k): str(v) for k, v in (artifacts or {}).items()},
            code_paths=tuple(str(p) for p in code_paths),
        )
        with tempfile.TemporaryDirectory(prefix="modelyard-register-") as tmp:
            model_dir = Path(tmp) / "model"
            model_dir.mkdir()
            if isinstance(model, str | Path):
                path = Path(model).expanduser()
                runtime = self.catalog.for_format(format) if format else self.catalog.for_path(path)
                saved = runtime.save_path(path, model_dir, options)
            else:
                runtime = self.catalog.for_format(format) if format else self.catalog.for_object(
                    model)
                saved = runtime.save(model, model_dir, options)
            fmt = saved.format or runtime.format
            sig = signature or saved.signature
            if data is not None:
                _check_data_columns(saved.meta.get("feature_names"), data)
                sample_out = self._check_saved(fmt, model_dir, saved.meta, sig, data)
                if signature is None:
                    sig = Signature(infer_schema(data),
                                    infer_schema(sample_out, "output") if sample_out is not None
                                    else None)
            if sensitive:
                sig = _mark_sensitive(sig, sensitive)
            profile_digest = None
            data_fp = None
            if data is not None:
                data_fp = fingerprint(data)
                profile_digest = self._store_profile(data, Path(tmp) / "profile")
            digest, manifest = self.artifacts.put_tree(model_dir)
            lineage = Lineage(
                params=dict(params or {}), metrics=metrics_clean, data=data_fp,
                code=detect_code_version(code_dir), parent_version=parent,
            )
            version = self.store.create_version(NewVersion(
                name=name, format=fmt, artifact_digest=digest, size_bytes=manifest.size,
                created_by=self.settings.actor(), lineage=lineage, signature=sig,
                runtime_meta=saved.meta, profile_digest=profile_digest,
                description=description, tags=dict(tags or {}),
            ))
        if alias is not None:
            self.set_alias(name, alias, version.version, reason="set at registration")
            version = self.store.get_version(name, version.version)
        return version

    def _check_saved(self, fmt: str, model_dir: Path, meta: dict[str, Any],
                     signature: Signature | None, data: Any) -> Any:
        """Load what was saved and predict on the first rows: a model that cannot do that is
        refused before anything is stored. Returns the predictions (for the output schema)."""
        head = _head(data, _CHECK_ROWS)
        predictor = self.catalog.for_format(fmt).load(model_dir, meta, LoadOptions())
        sig = signature or Signature(infer_schema(head))
        try:
            prepared = sig.validate_input(head)
        except ModelyardError as exc:
            raise InvalidInputError(
                f"The data passed to register() does not match the model's own signature: "
                f"{exc.message}", hint="Pass the model's input columns as data=.",
            ) from exc
        try:
            return predictor.predict(prepared)
        except Exception as exc:
            raise PredictionError(
                f"The model raised {type(exc).__name__} when predicting on the registration "
                f"data, so it was not registered: {exc}",
                hint="Check that data= holds the model's input features (no target column).",
            ) from exc

    def _store_profile(self, data: Any, directory: Path) -> str:
        reg = self.settings.registry
        profile, sample = compute_profile(
            data, sample_rows=reg.profile_sample_rows, bins=reg.profile_bins,
            top_categories=reg.profile_top_categories, seed=reg.profile_seed,
        )
        directory.mkdir()
        write_profile(profile, sample, directory)
        digest, _ = self.artifacts.put_tree(directory)
        return digest

    # -- lookup and loading ----------------------------------------------------------------
    def resolve(self, ref: str | ModelRef, *, at: datetime | None = None) -> ModelVersion:
        """The version a reference points to (``at``: what an alias pointed to back then)."""
        return self.store.resolve(_ref(ref), at=at)

    def load(self, ref: str | ModelRef) -> Model:
        """Load a version, verifying every file's checksum first.

        >>> model = client.load("models:/fraud@production")          # doctest: +SKIP
        """
        version = self.resolve(ref)
        runtime = self.catalog.for_format(version.format)
        files = tempfile.TemporaryDirectory(prefix="modelyard-model-")
        try:
            self.artifacts.fetch_tree(version.artifact_digest, files.name)
            predictor = runtime.load(Path(files.name), version.runtime_meta, LoadOptions())
        except BaseException:
            files.cleanup()
            raise
        return Model(predictor, version, files=files)

    def get_profile(self, ref: str | ModelRef) -> ReferenceProfile:
        """The reference profile stored with a version."""
        with self._profile_dir(ref) as directory:
            return read_profile(Path(directory))

    def get_reference_sample(self, ref: str | ModelRef) -> Any:
        """The seeded sample of reference rows stored with a version, as a pyarrow Table."""
        with self._profile_dir(ref) as directory:
            return read_reference_sample(Path(directory))

    def _profile_dir(self, ref: str | ModelRef) -> tempfile.TemporaryDirectory[str]:
        version = self.resolve(ref)
        if version.profile_digest is None:
            raise InvalidInputError(
                f"{version.uri} was registered without data, so it has no reference profile.",
                hint="Register a new version with data=X_train or X_val.",
            )
        tmp = tempfile.TemporaryDirectory(prefix="modelyard-profile-")
        self.artifacts.fetch_tree(version.profile_digest, tmp.name)
        return tmp

    def get_model(self, name: str) -> RegisteredModel:
        return self.store.get_model(name)

    def list_models(self, *, include_archived: bool = False) -> list[RegisteredModel]:
        return self.store.list_models(include_archived=include_archived)

    def get_version(self, name: str, version: int) -> ModelVersion:
        return self.store.get_version(name, version)

    def list_versions(self, name: str, *, include_archived: bool = True) -> list[ModelVersion]:
        return self.store.list_versions(name, include_archived=include_archived)

    # -- aliases -----------------------------------------------------------------------------
    def set_alias(self, name: str, alias: str, version: int, *, reason: str = "") -> AliasChange:
        """Point ``alias`` at ``version``; the move is recorded with who, when and why."""
        return self.store.set_alias(name, alias, version, self.settings.actor(), reason)

    def delete_alias(self, name: str, alias: str, *, reason: str = "") -> AliasChange:
        return self.store.delete_alias(name, alias, self.settings.actor(), reason)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasChange]:
        return self.store.alias_history(name, alias)

    def rollback(self, name: str, alias: str = "production", *, reason: str = "") -> AliasChange:
        """Return ``alias`` to the version it pointed to before the current one."""
        return self.store.rollback(name, alias, self.settings.actor(), reason)

    def onnx_twin(self, version: ModelVersion) -> ModelVersion | None:
        """The newest ready ONNX export of ``version`` that computes the same answers: exported
        from it (``modelyard export onnx``, checked against it then), neither quantized nor
        pruned. What ``serving.prefer_onnx`` serves in its place.

        >>> client.onnx_twin(client.resolve("models:/fraud@production"))  # doctest: +SKIP
        ModelVersion(name='fraud', version=4, format='onnx', ...)
        """
        twins = [v for v in self.store.list_versions(version.name, include_archived=False)
                 if v.format == "onnx" and v.status == Status.READY
                 and v.lineage.parent_version == version.version
                 and v.tags.get("exported_from") == version.uri
                 and "quantized" not in v.tags and "pruned" not in v.tags]
        return max(twins, key=lambda v: v.version) if twins else None

    # -- rollouts ----------------------------------------------------------------------------
    @property
    def rollouts(self) -> SqlRolloutStore:
        from modelyard.registry.sql.rollout_store import SqlRolloutStore

        return SqlRolloutStore(self.store)

    def start_rollout(self, name: str, challenger: int, *, mode: str = "canary",
                      weight: float | None = None, steps: Sequence[float] | None = None,
                      alias: str = "production", policy: RolloutPolicy | None = None,
                      reason: str = "") -> Rollout:
        """Start rolling ``challenger`` out against the version ``alias`` points to.

        Servers that follow ``models:/NAME@ALIAS`` pick it up within ``serving.alias_poll_s``
        and drive it: steps advance while the challenger holds its objectives, and it is
        rolled back automatically when it does worse than the champion.

        >>> client.start_rollout("fraud", 5, mode="canary", steps=[0.1, 0.5, 1.0])  # doctest: +SKIP
        """
        from modelyard.core.rollout import RolloutPolicy

        policy = policy or RolloutPolicy()
        if steps is not None:
            policy = dataclasses.replace(policy, steps=tuple(float(w) for w in steps))
        elif weight is not None and mode != "shadow":
            # One explicit weight and no steps: start there, then the default steps above it.
            policy = dataclasses.replace(policy, steps=(float(weight), *(
                w for w in policy.steps if w > weight)))
        return self.rollouts.start(name, challenger, mode=mode, policy=policy,
                                   actor=self.settings.actor(), alias=alias, weight=weight,
                                   reason=reason)

    def get_rollout(self, name: str) -> Rollout | None:
        """The model's active rollout, or None."""
        return self.rollouts.active(name)

    def active_rollout(self, name: str) -> Rollout | None:
        """Same as :meth:`get_rollout`; what serving's rollout source protocol calls."""
        return self.rollouts.active(name)

    def rollout_history(self, name: str, limit: int | None = None) -> list[Rollout]:
        return self.rollouts.history(name, limit)

    def promote_rollout(self, name: str, *, reason: str = "") -> Rollout:
        """Promote the active rollout's challenger now (the champion alias moves to it)."""
        active = self._active_or_raise(name)
        done = self.rollouts.promote(active.id, reason=reason or "promoted by hand",
                                     actor=self.settings.actor())
        return done or self.rollouts.get(active.id)

    def abort_rollout(self, name: str, *, reason: str = "") -> Rollout:
        """Stop the active rollout; the champion keeps serving."""
        active = self._active_or_raise(name)
        done = self.rollouts.abort(active.id, reason=reason, actor=self.settings.actor())
        return done or self.rollouts.get(active.id)

    def decide_rollout(self, rollout: Rollout, decision: Decision, *,
                       actor: str | None = None) -> Rollout | None:
        """Apply a controller's decision (advance, promote, roll back) to ``rollout`` if it
        is still active at the step that was judged; None if someone decided first."""
        who = actor or self.settings.actor()
        store = self.rollouts
        if decision.action == "advance":
            assert decision.weight is not None
            return store.advance(rollout.id, expected_step=rollout.step,
                                 weight=decision.weight, reason=decision.reason, actor=who)
        if decision.action == "promote":
            return store.promote(rollout.id, reason=decision.reason, actor=who,
                                 expected_step=rollout.step)
        if decision.action == "rollback":
            return store.rollback(rollout.id, reason=decision.reason, actor=who,
                                  expected_step=rollout.step)
        return None

    def _active_or_raise(self, name: str) -> Rollout:
        active = self.rollouts.active(name)
        if active is None:
            self.store.get_model(name)  # a clear error for an unknown model first
            raise NotFoundError(
                f"Model {name!r} has no active rollout.",
                hint=f"Start one: modelyard rollout start {name} --challenger VERSION")
        return active

    # -- life cycle --------------------------------------------------------------------------
    def archive_model(self, name: str, *, restore: bool = False) -> RegisteredModel:
        status = Status.READY if restore else Status.ARCHIVED
        return self.store.set_model_status(name, status, self.settings.actor())

    def archive_version(self, name: str, version: int, *, restore: bool = False) -> ModelVersion:
        status = Status.READY if restore else Status.ARCHIVED
        result = self.store.set_version_status(name, version, status, self.settings.actor())
        assert result is not None
        return result

    def delete_model(self, name: str) -> None:
        """Delete a model; its name can be registered again, with version numbers continuing."""
        self.store.set_model_status(name, Status.DELETED, self.settings.actor())

    def delete_version(self, name: str, version: int) -> None:
        """Delete one version (refused while an alias points to it); its number is not reused."""
        self.store.set_version_status(name, version, Status.DELETED, self.settings.actor())

    def update_model(self, name: str, *, description: str | None = None,
                     tags: Mapping[str, str] | None = None) -> RegisteredModel:
        return self.store.update_model(name, description=description,
                                       tags=dict(tags) if tags is not None else None,
                                       actor=self.settings.actor())

    def update_version(self, name: str, version: int, *, description: str | None = None,
                       tags: Mapping[str, str] | None = None) -> ModelVersion:
        return self.store.update_version(name, version, description=description,
                                         tags=dict(tags) if tags is not None else None,
                                         actor=self.settings.actor())


    # -- signatures --------------------------------------------------------------------------
    def sign(self, ref: str | ModelRef, private_key_path: str | Path) -> VersionSignature:
        """Sign a version's content, name and number with an Ed25519 private key; the
        signature is stored with the version and recorded in the audit log.

        >>> client.sign("models:/fraud/3", "keys/private.pem").key_id    # doctest: +SKIP
        '1f0c9a2e7b3d4c55'
        """
        from modelyard.registry.sql.signature_store import SqlSignatureStore
        from modelyard.security.signing import load_private_key, sign_version

        key = load_private_key(private_key_path)
        version = self.resolve(ref)
        signature = sign_version(key, model=version.name, version=version.version,
                                 digest=version.artifact_digest, signed_by=self.settings.actor())
        return SqlSignatureStore(self.store.engine).add(signature)

    def signatures(self, ref: str | ModelRef) -> list[VersionSignature]:
        """The signatures stored for the version ``ref`` points to (any key, unchecked)."""
        from modelyard.registry.sql.signature_store import SqlSignatureStore

        version = self.resolve(ref)
        return SqlSignatureStore(self.store.engine).list(version.name, version.version)

    def verify(self, ref: str | ModelRef,
               trusted: Sequence[str | Path] | TrustedKeys | None = None) -> VersionSignature:
        """The valid signature of ``ref``'s version by a trusted key (public key files, or
        ``settings.security.trusted_keys`` when None); raises UnsafeModelError when no trusted
        key signed it and IntegrityError when a signature does not match the version.

        >>> client.verify("models:/fraud/3", ["keys/public.pem"]).key_id  # doctest: +SKIP
        '1f0c9a2e7b3d4c55'
        """
        from modelyard.registry.sql.signature_store import SqlSignatureStore
        from modelyard.security.signing import TrustedKeys, load_trusted_keys, verify_version

        keys = trusted if isinstance(trusted, TrustedKeys) else load_trusted_keys(
            self.settings.security.trusted_keys if trusted is None else trusted)
        version = self.resolve(ref)
        stored = SqlSignatureStore(self.store.engine).list(version.name, version.version)
        return verify_version(stored, model=version.name, version=version.version,
                              digest=version.artifact_digest, trusted=keys)

def _mark_sensitive(signature: Signature | None, names: Sequence[str]) -> Signature:
    if isinstance(names, str):  # "ssn" would otherwise mark 's' and 'n'
        names = [names]
    if signature is None:
        raise InvalidInputError(
            f"Columns {list(names)} cannot be marked sensitive: the model has no signature.",
            hint="Pass data= (or signature=) so the input columns are known.")
    return signature.with_sensitive(names)


def _ref(ref: str | ModelRef) -> ModelRef:
    return ref if isinstance(ref, ModelRef) else ModelRef.parse(ref)


def _metrics(metrics: Mapping[str, float] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError):
            raise InvalidInputError(
                f"The metric {key!r} must be a number. Got {value!r} instead."
            ) from None
    return out


def _check_data_columns(feature_names: list[str] | None, data: Any) -> None:
    """Refuse data with columns the model does not use (typically the label): they would
    become required inputs of every later prediction."""
    if not feature_names or not is_table(data):
        return
    columns = list(as_columns(data))
    if not set(feature_names) <= set(columns):
        return  # generated names (Column_0...): nothing to compare
    extra = [c for c in columns if c not in set(feature_names)]
    if extra:
        raise InvalidInputError(
            f"data= has column(s) {extra} that the model was not trained on; they would "
            "become required inputs of every prediction.",
            hint="Pass only the model's input features (drop the label column; CLI: --target).",
        )


def _head(data: Any, n: int) -> Any:
    if is_table(data):
        return {k: v[:n] for k, v in as_columns(data).items()}
    return np.asarray(data)[:n]
