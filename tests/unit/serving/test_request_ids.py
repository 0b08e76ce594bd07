"""Request ids the server makes: the same shape as before (32 hex digits), unique within a
process, and not shared with a forked child; and the collector tuning a loaded server does."""

from __future__ import annotations

import gc
import os
import re

from modelyard.serving.dataplane import new_request_id
from modelyard.serving.server import tune_collector


def test_request_ids_are_32_hex_digits_and_unique() -> None:
    ids = [new_request_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids[:1000])


def test_a_forked_child_draws_its_own_prefix() -> None:
    mine = new_request_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    theirs = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(theirs) == 32
    assert theirs[:16] != mine[:16]


def test_tune_collector_freezes_and_raises_the_first_threshold() -> None:
    before = gc.get_threshold()
    try:
        tune_collector(12_345)
        assert gc.get_threshold() == (12_345, *before[1:])
        assert gc.get_freeze_count() > 0
        tune_collector(0)  # keeps the threshold it finds
        assert gc.get_threshold()[0] == 12_345
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
