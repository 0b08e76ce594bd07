"""Sensitive input columns in the inference log: dropped, or replaced by a keyed hash.

A column marked sensitive in a version's signature (``Client.register(..., sensitive=[...])``,
``modelyard register --sensitive``) never reaches the inference log in clear. The background
writer of :class:`~modelyard.monitoring.inference_log.InferenceLog` applies
:func:`redact_table` to every batch before the store sees it (nothing of this runs on the
request path), as ``security.sensitive`` says:

* ``drop``: the ``in.<column>`` column is removed;
* ``hash``: each value becomes the hex HMAC-SHA256 of its text under a per-installation key
  (``MODELYARD_HOME/log-hmac.key``, mode 0600, created on first use). Equal values give equal
  hashes, so joins, distinct counts and categorical drift still work.

Why keyed: a plain SHA-256 of a low-entropy value is reversible by brute force (there are only
10^9 US social security numbers: hashing them all takes seconds). Without the key, the HMAC
cannot be recomputed, so the log reveals nothing about the values. With the key (an operator
answering an erasure request, say), ``hmac_hex(load_hmac_key(path), "123-45-6789")`` finds a
person's rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import math
import os
import secrets
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from modelyard.core.signature import Signature
from modelyard.errors import ConfigurationError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "HMAC_KEY_FILE",
    "SensitiveColumns",
    "hmac_hex",
    "load_hmac_key",
    "redact_table",
]

HMAC_KEY_FILE = "log-hmac.key"
"""Name of the key file in ``MODELYARD_HOME``."""

_KEY_BYTES = 32
_INPUT_PREFIX = "in."


def load_hmac_key(path: str | Path) -> bytes:
    """The inference log's HMAC key from ``path`` (hex text), created (32 random bytes, mode
    0600) if there is none yet. Safe when several processes start at once: the file appears
    whole or not at all, and every process ends up with the same key."""
    path = Path(path).expanduser()
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_bytes(_KEY_BYTES).hex() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):  # another process won: use its key
            os.link(tmp, path)  # atomic create-if-absent
    finally:
        tmp.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & 0o077:
        raise ConfigurationError(
            f"The inference log's HMAC key {str(path)!r} is readable by other users "
            f"(mode {oct(mode & 0o777)}).",
            hint=f"Run: chmod 600 {path}")
    text = path.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise ConfigurationError(
            f"The inference log's HMAC key {str(path)!r} is not at least 16 bytes of hex.",
            hint="Restore it from a backup; or, to start a new key (hashes already logged "
                 "will no longer match new ones), delete the file.")
    return key


def _text(value: Any) -> bytes | None:
    """The bytes a value is hashed as: text as UTF-8, everything else as its JSON; missing
    values (None, NaN) stay missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes):
        return value
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def hmac_hex(key: bytes, value: Any) -> str | None:
    """The hex HMAC-SHA256 a value is logged as (``None`` for a missing value).

    >>> hmac_hex(b"k" * 32, "123-45-6789")[:16]
    'bdf429a9ae79e76e'
    """
    data = _text(value)
    return None if data is None else hmac.new(key, data, hashlib.sha256).hexdigest()


def _hash_column(key: bytes, column: pa.ChunkedArray | pa.Array) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    values = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    try:
        # Hash each distinct value once: categorical columns repeat a lot.
        uniques = pc.unique(values)
        index = pc.index_in(values, value_set=uniques, skip_nulls=True)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):  # e.g. list columns
        return pa.array([hmac_hex(key, v) for v in values.to_pylist()], pa.string())
    hashed = pa.array([hmac_hex(key, v) for v in uniques.to_pylist()], pa.string())
    return hashed.take(index)


def redact_table(table: pa.Table, columns: Iterable[str], mode: Literal["drop", "hash"],
                 key: bytes | None = None) -> pa.Table:
    """``table`` (an inference-log batch) with the input ``columns`` dropped or keyed-hashed.

    >>> import pyarrow as pa
    >>> t = pa.table({"in.ssn": ["1", "1"], "in.age": [3, 4]})
    >>> redact_table(t, {"ssn"}, "drop").column_names
    ['in.age']
    """
    present = [_INPUT_PREFIX + c for c in sorted(set(columns))
               if _INPUT_PREFIX + c in table.column_names]
    if not present:
        return table
    if mode == "drop":
        return table.drop_columns(present)
    if key is None:
        raise ConfigurationError("Hashing sensitive columns needs the inference log's HMAC key.",
                                 hint="Pass the key (see load_hmac_key).")
    for name in present:
        i = table.column_names.index(name)
        table = table.set_column(i, name, _hash_column(key, table.column(name)))
    return table


class SensitiveColumns:
    """``sensitive_columns(model, version)`` for the inference log, from version signatures,
    cached (a version's signature never changes, so each is looked up once).

    ``signature_of(model, version)`` returns the signature (or ``None``); an exception it
    raises propagates, so the writer fails that batch rather than log it in clear.

    >>> lookup = SensitiveColumns(lambda model, version: None)
    >>> lookup("fraud", 3)
    frozenset()
    """

    def __init__(self, signature_of: Callable[[str, int], Signature | None]) -> None:
        self.signature_of = signature_of
        self._cache: dict[tuple[str, int], frozenset[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, model: str, version: int) -> frozenset[str]:
        key = (model, version)
        hit = self._cache.get(key)
        if hit is None:
            signature = self.signature_of(model, version)
            hit = signature.sensitive_columns if signature is not None else frozenset()
            with self._lock:
                self._cache[key] = hit
        return hit
