"""The pure hash chain: canonical encoding, hashes and what verification detects."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelyard.errors import InvalidInputError
from modelyard.security.audit import (
    GENESIS,
    AuditEntry,
    canonical,
    entry_hash,
    make_entry,
    normalise,
    parse_head,
    verify_chain,
)


def _chain(n: int = 5) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    prev = GENESIS
    for seq in range(1, n + 1):
        entry = make_entry(seq=seq, ts=1_700_000_000.0 + seq, actor="ann", action="alias.set",
                           target="models:/fraud@production", model="fraud",
                           before=seq - 1 or None, after=seq, prev_hash=prev)
        entries.append(entry)
        prev = entry.hash
    return entries


def _rehash(entry: AuditEntry) -> AuditEntry:
    return dataclasses.replace(entry, hash=entry_hash(entry))


def test_hash_is_sha256_of_sorted_compact_json() -> None:
    entry = _chain(1)[0]
    body = {"seq": 1, "ts": 1_700_000_001.0, "actor": "ann", "action": "alias.set",
            "target": "models:/fraud@production", "model": "fraud", "before": None,
            "after": 1, "prev_hash": GENESIS}
    expected = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert entry.hash == expected
    assert entry.prev_hash == "0" * 64
    assert canonical(**dict(body.items())).startswith(b'{"action":"alias.set"')


def test_an_intact_chain_verifies_and_reports_its_head() -> None:
    entries = _chain()
    verdict = verify_chain(entries)
    assert verdict.ok
    assert verdict.count == 5
    assert (verdict.head_seq, verdict.head_hash) == (5, entries[-1].hash)
    assert verdict.summary().startswith("chain intact, 5 entries")
    assert verify_chain([]).ok


TAMPERING: list[tuple[str, Callable[[list[AuditEntry]], list[AuditEntry]], int, str, str]] = [
    ("edited-after", lambda e: [*e[:2], dataclasses.replace(e[2], after=99), *e[3:]],
     3, "edited", "entry 3 was edited"),
    ("edited-actor", lambda e: [dataclasses.replace(e[0], actor="mallory"), *e[1:]],
     1, "edited", "entry 1 was edited"),
    ("edited-ts", lambda e: [*e[:4], dataclasses.replace(e[4], ts=e[4].ts + 1e-6)],
     5, "edited", "entry 5 was edited"),
    ("deleted-middle", lambda e: [*e[:2], *e[3:]], 3, "missing", "entry 3 is missing"),
    ("deleted-two", lambda e: [*e[:1], *e[3:]], 2, "missing", "entries 2-3 are missing"),
    ("deleted-first", lambda e: e[1:], 1, "missing", "entry 1 is missing"),
    ("swapped", lambda e: [e[0], e[2], e[1], *e[3:]], 2, "reordered",
     "entry 2 comes after entry 3"),
    ("duplicated", lambda e: [*e[:3], e[2], *e[3:]], 3, "reordered", "out of order"),
    ("rewritten-and-rehashed", lambda e: [*e[:1], _rehash(dataclasses.replace(e[1], after=7)),
                                          *e[2:]],
     3, "relinked", "entry 3 does not link to entry 2"),
    ("renumbered", lambda e: [*e[:2], _rehash(dataclasses.replace(e[3], seq=3)), *e[4:]],
     3, "relinked", "does not link"),
]


@pytest.mark.parametrize(("tamper", "bad_seq", "problem", "reason"),
                         [t[1:] for t in TAMPERING], ids=[t[0] for t in TAMPERING])
def test_tampering_is_found_at_the_first_bad_entry(
        tamper: Callable[[list[AuditEntry]], list[AuditEntry]], bad_seq: int, problem: str,
        reason: str) -> None:
    verdict = verify_chain(tamper(_chain()))
    assert not verdict.ok
    assert (verdict.bad_seq, verdict.problem) == (bad_seq, problem)
    assert reason in verdict.reason
    assert verdict.summary().startswith(f"chain broken at entry {bad_seq}:")


def test_a_cut_off_tail_is_invisible_to_the_chain_but_not_to_an_anchor() -> None:
    entries = _chain()
    anchor = (5, entries[-1].hash)
    assert verify_chain(entries[:3]).ok  # the limit of any hash chain: documented
    verdict = verify_chain(entries[:3], expect_head=anchor)
    assert (verdict.ok, verdict.bad_seq, verdict.problem) == (False, 4, "missing")
    assert "entries 4-5 were deleted" in verdict.reason
    assert verify_chain(entries, expect_head=anchor).ok
    assert verify_chain(entries, expect_head=(3, entries[2].hash)).ok  # later growth is fine
    assert verify_chain(entries, expect_head=(None, entries[2].hash)).ok


def test_an_anchor_catches_a_log_rewritten_from_some_entry_on() -> None:
    entries = _chain()
    forged = entries[:2]
    for old in entries[2:]:
        forged.append(make_entry(seq=old.seq, ts=old.ts, actor="mallory", action=old.action,
                                 target=old.target, model=old.model, before=old.before,
                                 after=old.after, prev_hash=forged[-1].hash))
    assert verify_chain(forged).ok  # self-consistent
    verdict = verify_chain(forged, expect_head=(4, entries[3].hash))
    assert (verdict.bad_seq, verdict.problem) == (4, "head")
    bare = verify_chain(forged, expect_head=(None, entries[3].hash))
    assert (bare.ok, bare.problem) == (False, "head")


@pytest.mark.parametrize(("text", "expected"), [
    ("12:" + "ab" * 32, (12, "ab" * 32)),
    ("  7:" + "AB" * 32 + "\n", (7, "ab" * 32)),
    ("cd" * 32, (None, "cd" * 32)),
], ids=["seq-hash", "spaces-uppercase", "bare-hash"])
def test_parse_head(text: str, expected: tuple[int | None, str]) -> None:
    assert parse_head(text) == expected


@pytest.mark.parametrize(("text", "match"), [
    ("12:abc", "not SEQ:HASH with a 64-character hex"),
    ("x:" + "ab" * 32, "sequence number 'x' that is not an integer"),
    ("12:" + "zz" * 32, "not SEQ:HASH"),
], ids=["short", "bad-seq", "not-hex"])
def test_parse_head_refuses(text: str, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        parse_head(text)


def test_values_are_normalised_to_what_json_reads_back() -> None:
    entry = make_entry(seq=1, ts=1.0, actor="a", action="x", target="t", model=None,
                       before={"tags": ("a", "b"), 2: {3}}, after=np.int64(4), prev_hash=GENESIS)
    assert entry.before == {"2": [3], "tags": ["a", "b"]}
    assert entry.after == 4
    assert verify_chain([entry]).ok


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)


@given(before=json_values, after=json_values)
def test_an_entry_survives_a_storage_round_trip(before: object, after: object) -> None:
    entry = make_entry(seq=1, ts=1_700_000_000.123456, actor="a", action="x", target="t",
                       model="m", before=before, after=after, prev_hash=GENESIS)
    stored = {k: orjson.loads(orjson.dumps(v)) for k, v in entry.to_dict().items()}
    assert entry_hash(AuditEntry(**stored)) == entry.hash
    assert normalise(stored["after"]) == stored["after"]
