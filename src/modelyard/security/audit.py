"""The hash-chained audit log, as pure functions: canonical encoding, hashing and verification.

Every change to the registry (and every key created, signature made or retention run) appends
one :class:`AuditEntry`. Each entry's ``hash`` is the SHA-256 of a canonical encoding of its own
fields *including* ``prev_hash``, the hash of the entry before it; the first entry links to
:data:`GENESIS` (64 zeros). So:

* editing any field of an entry changes its hash: detected ("edited");
* deleting an entry leaves a gap in ``seq`` and a broken link: detected ("missing");
* entries out of ``seq`` order are detected ("reordered");
* recomputing the hash of an edited entry breaks the link of the entry after it: detected
  ("relinked");
* deleting the *last* entries, or rewriting the whole chain from some entry on, leaves a chain
  that is internally consistent. A chain alone cannot see that; an anchor kept elsewhere can:
  record ``modelyard audit head`` (seq and hash) outside the database and pass it back with
  ``modelyard audit verify --expect-head SEQ:HASH``.

The storage (SQL) lives in :mod:`modelyard.registry.sql.audit`; this module imports no database.

>>> e = make_entry(seq=1, ts=0.0, actor="ann", action="alias.set", target="models:/m@prod",
...                model="m", before=None, after=1, prev_hash=GENESIS)
>>> verify_chain([e]).ok
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

import orjson

from modelyard.errors import InvalidInputError

__all__ = [
    "GENESIS",
    "AuditEntry",
    "ChainVerdict",
    "Problem",
    "canonical",
    "entry_hash",
    "make_entry",
    "normalise",
    "parse_head",
    "verify_chain",
]

GENESIS = "0" * 64
"""The ``prev_hash`` of the first entry."""

_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY

Problem = Literal["edited", "missing", "reordered", "relinked", "head"]


def _default(value: object) -> Any:
    """Anything orjson cannot encode natively is recorded by its text (sets sorted)."""
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


def normalise(value: Any) -> Any:
    """``value`` as it reads back from JSON: what is stored is exactly what is hashed.

    >>> normalise({"b": (1, 2), "a": {3}})
    {'a': [3], 'b': [1, 2]}
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    return orjson.loads(orjson.dumps(value, default=_default, option=_OPTIONS))


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit record. ``before``/``after`` are JSON values (``None`` when not applicable)."""

    seq: int
    ts: float
    actor: str
    action: str
    target: str
    model: str | None
    before: Any
    after: Any
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """The entry as a JSON-ready mapping (the ``--json`` output of ``modelyard audit``)."""
        return {"seq": self.seq, "ts": self.ts, "actor": self.actor, "action": self.action,
                "target": self.target, "model": self.model, "before": self.before,
                "after": self.after, "prev_hash": self.prev_hash, "hash": self.hash}


def canonical(*, seq: int, ts: float, actor: str, action: str, target: str, model: str | None,
              before: Any, after: Any, prev_hash: str) -> bytes:
    """The bytes an entry's hash covers: its fields as JSON with sorted keys, no whitespace."""
    body = {"seq": int(seq), "ts": float(ts), "actor": actor, "action": action,
            "target": target, "model": model, "before": before, "after": after,
            "prev_hash": prev_hash}
    return orjson.dumps(body, default=_default, option=_OPTIONS)


def entry_hash(entry: AuditEntry) -> str:
    """The hash ``entry`` should carry, recomputed from its other fields."""
    return hashlib.sha256(canonical(
        seq=entry.seq, ts=entry.ts, actor=entry.actor, action=entry.action,
        target=entry.target, model=entry.model, before=entry.before, after=entry.after,
        prev_hash=entry.prev_hash)).hexdigest()


def make_entry(*, seq: int, ts: float, actor: str, action: str, target: str,
               model: str | None, before: Any, after: Any, prev_hash: str) -> AuditEntry:
    """A new entry with ``before``/``after`` normalised and its hash computed."""
    entry = AuditEntry(seq=int(seq), ts=float(ts), actor=actor, action=action, target=target,
                       model=model, before=normalise(before), after=normalise(after),
                       prev_hash=prev_hash, hash="")
    return replace(entry, hash=entry_hash(entry))


@dataclass(frozen=True, slots=True)
class ChainVerdict:
    """The outcome of :func:`verify_chain`.

    ``bad_seq`` is the first entry found wrong (for a tail cut off, the first missing seq),
    ``problem`` names the kind and ``reason`` says it in a sentence.
    """

    ok: bool
    count: int
    head_seq: int
    head_hash: str
    bad_seq: int | None = None
    problem: Problem | None = None
    reason: str = ""

    def summary(self) -> str:
        """One line for a terminal."""
        if self.ok:
            return f"chain intact, {self.count} entries (head {self.head_seq}:{self.head_hash})"
        return f"chain broken at entry {self.bad_seq}: {self.reason}"


def parse_head(text: str) -> tuple[int | None, str]:
    """Parse an anchor ``SEQ:HASH`` (or a bare ``HASH``) as printed by ``modelyard audit head``.

    >>> parse_head("3:" + "a" * 64)[0]
    3
    """
    seq_text, sep, digest = text.strip().rpartition(":")
    digest = digest.lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidInputError(
            f"The audit head {text!r} is not SEQ:HASH with a 64-character hex SHA-256.",
            hint="Use the line 'modelyard audit head' printed, e.g. '42:9f86d0...'.")
    if not sep:
        return None, digest
    if not seq_text.isdigit():
        raise InvalidInputError(
            f"The audit head {text!r} has a sequence number {seq_text!r} that is not an "
            "integer.", hint="Use the line 'modelyard audit head' printed, e.g. '42:9f86d0...'.")
    return int(seq_text), digest


def verify_chain(entries: Iterable[AuditEntry], *,
                 expect_head: tuple[int | None, str] | None = None) -> ChainVerdict:
    """Check that ``entries`` (in the order given, meant to be ascending ``seq``) form one
    unbroken chain from :data:`GENESIS`; stop at the first problem.

    With ``expect_head`` (an anchor from :func:`parse_head`), also check that the anchored entry
    is still in the chain with that hash: this catches the deletion of the newest entries,
    which the chain alone cannot see.
    """
    prev_hash, prev_seq, count = GENESIS, 0, 0
    anchor_seen = False
    stream = iter(entries)
    for entry in stream:
        expected = prev_seq + 1
        if entry_hash(entry) != entry.hash:
            return _bad(count, prev_seq, prev_hash, entry.seq, "edited",
                        f"entry {entry.seq} was edited: its content no longer matches its hash")
        if entry.seq <= prev_seq:
            return _bad(count, prev_seq, prev_hash, entry.seq, "reordered",
                        f"entry {entry.seq} comes after entry {prev_seq}: entries are out of "
                        "order or duplicated")
        if entry.seq > expected:
            if any(later.seq == expected for later in stream):
                return _bad(count, prev_seq, prev_hash, expected, "reordered",
                            f"entry {expected} comes after entry {entry.seq}: entries are out "
                            "of order")
            gap = (f"entry {expected} is" if entry.seq == expected + 1
                   else f"entries {expected}-{entry.seq - 1} are")
            return _bad(count, prev_seq, prev_hash, expected, "missing",
                        f"{gap} missing (deleted) before entry {entry.seq}")
        if entry.prev_hash != prev_hash:
            what = "the start of the log" if prev_seq == 0 else f"entry {prev_seq}"
            return _bad(count, prev_seq, prev_hash, entry.seq, "relinked",
                        f"entry {entry.seq} does not link to {what}: {what} or this entry was "
                        "rewritten")
        if expect_head is not None and entry.seq == expect_head[0]:
            anchor_seen = True
            if entry.hash != expect_head[1]:
                return _bad(count, prev_seq, prev_hash, entry.seq, "head",
                            f"entry {entry.seq} is not the anchored one (hash "
                            f"{entry.hash[:12]}..., anchor {expect_head[1][:12]}...): the log "
                            "was rewritten from here on")
        if expect_head is not None and expect_head[0] is None and entry.hash == expect_head[1]:
            anchor_seen = True
        prev_hash, prev_seq, count = entry.hash, entry.seq, count + 1
    if expect_head is not None and not anchor_seen:
        seq, digest = expect_head
        if seq is not None and seq > prev_seq:
            return _bad(count, prev_seq, prev_hash, prev_seq + 1, "missing",
                        f"the log ends at entry {prev_seq} but the anchor names entry {seq}: "
                        f"entries {prev_seq + 1}-{seq} were deleted")
        return _bad(count, prev_seq, prev_hash, prev_seq + 1, "head",
                    f"no entry has the anchored hash {digest[:12]}...: the newest entries were "
                    "deleted or the log was rewritten")
    return ChainVerdict(ok=True, count=count, head_seq=prev_seq, head_hash=prev_hash)


def _bad(count: int, head_seq: int, head_hash: str, bad_seq: int, problem: Problem,
         reason: str) -> ChainVerdict:
    return ChainVerdict(ok=False, count=count, head_seq=head_seq, head_hash=head_hash,
                        bad_seq=bad_seq, problem=problem, reason=reason)
