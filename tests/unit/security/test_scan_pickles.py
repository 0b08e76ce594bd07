"""Pickle opcodes walked without unpickling: malicious streams written by pickle.dumps and by
hand (protocol 0 GLOBAL, INST, STACK_GLOBAL over memoized names...), ordinary model pickles,
and joblib files whose raw array bytes sit between the opcodes."""

from __future__ import annotations

import io
import os
import pickle
import struct
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from modelyard.security.findings import Finding
from modelyard.security.pickles import analyze_pickle, classify_global, scan_pickle


class _Evil:
    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, ("echo pwned",))


class _Custom:
    """A class of the user's own: unknown to the allowlist."""

    def __init__(self) -> None:
        self.weights = [1.0, 2.0]


def _scan(data: bytes) -> list[Finding]:
    return scan_pickle(io.BytesIO(data), "x.pkl")


def _rules(findings: list[Finding]) -> set[tuple[str, str]]:
    return {(f.severity, f.rule) for f in findings}


def _u(text: str) -> bytes:  # SHORT_BINUNICODE
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


PROTO4 = b"\x80\x04"
MEMOIZE, STACK_GLOBAL, REDUCE, STOP, TUPLE1, POP = b"\x94", b"\x93", b"R", b".", b"\x85", b"0"


def _binget(index: int) -> bytes:
    return b"h" + bytes([index])


# -- malicious ---------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5], ids=lambda p: f"protocol-{p}")
def test_reduce_to_os_system_is_critical(protocol: int) -> None:
    findings = _scan(pickle.dumps(_Evil(), protocol=protocol))
    critical = [f for f in findings if f.severity == "critical"]
    assert len(critical) == 1
    assert critical[0].rule == "pickle.dangerous-global"
    assert f"calls {os.system.__module__}.system" in critical[0].message


HAND_WRITTEN = [
    # Protocol 0: GLOBAL 'os system', a MARK'd string argument, TUPLE, REDUCE.
    (b"cos\nsystem\n(S'echo pwned'\ntR.", "os.system", "critical"),
    # Python 2 names are mapped by the unpickler: __builtin__.eval is builtins.eval.
    (b"c__builtin__\neval\n(S'1+1'\ntR.", "__builtin__.eval", "critical"),
    # INST imports and calls in one opcode.
    (b"(S'echo pwned'\nios\nsystem\n.", "os.system", "critical"),
    # STACK_GLOBAL whose operands come back from the memo after being popped.
    (PROTO4 + _u("subprocess") + MEMOIZE + _u("check_output") + MEMOIZE + POP + POP
     + _binget(0) + _binget(1) + STACK_GLOBAL + _u("id") + TUPLE1 + REDUCE + STOP,
     "subprocess.check_output", "critical"),
    # BINUNICODE (4-byte length) operands, and the callable only imported, never called.
    (PROTO4 + b"X" + struct.pack("<I", 8) + b"builtins" + b"X" + struct.pack("<I", 4) + b"exec"
     + STACK_GLOBAL + STOP, "builtins.exec", "high"),
    # A dotted protocol-4 name walking from an allowlisted package to os.
    (PROTO4 + _u("sklearn") + _u("base.os.system") + STACK_GLOBAL + _u("id") + TUPLE1 + REDUCE
     + STOP, "sklearn.base.os.system", "critical"),
    # getattr is how most exploits reach a method: dangerous on its own.
    (b"cbuiltins\ngetattr\n(cos\npath\nS'join'\ntR.", "builtins.getattr", "critical"),
    # Nested deserialization hides the payload from a scanner: flagged.
    (b"cnumpy\nload\n(S'x.npy'\ntR.", "numpy.load", "critical"),
]


@pytest.mark.parametrize(
    ("data", "qualified", "severity"), HAND_WRITTEN,
    ids=["protocol0-global", "py2-builtin-eval", "inst", "stack-global-from-memo",
         "imported-not-called", "dotted-name", "getattr", "numpy-load"])
def test_hand_written_streams(data: bytes, qualified: str, severity: str) -> None:
    findings = _scan(data)
    dangerous = [f for f in findings if f.rule == "pickle.dangerous-global"]
    assert any(qualified in f.message and f.severity == severity for f in dangerous), findings


def test_a_name_computed_at_load_time_is_high() -> None:
    # STACK_GLOBAL's module is the result of a call: it cannot be resolved offline.
    data = (PROTO4 + b"cbuiltins\nstr\n" + _u("os") + TUPLE1 + REDUCE + _u("system")
            + STACK_GLOBAL + STOP)
    assert ("high", "pickle.unresolved-global") in _rules(_scan(data))


@pytest.mark.parametrize(
    ("data", "match"),
    [(pickle.dumps(_Evil(), protocol=2)[:-6], r"could not be parsed"),
     (PROTO4 + b"\x82\x01" + STOP, r"extension-registry code 1"),
     (PROTO4 + b"\xff" + STOP, r"could not be parsed")],
    ids=["truncated", "ext1", "unknown-opcode"])
def test_what_cannot_be_walked_is_medium(data: bytes, match: str) -> None:
    import re

    findings = _scan(data)
    assert any(f.severity == "medium" and re.search(match, f.message) for f in findings), findings


def test_globals_before_a_parse_error_are_still_reported() -> None:
    data = pickle.dumps(_Evil(), protocol=2)
    findings = _scan(data[:-1] + b"\xff")  # the call happens before the loader hits the error
    assert {"critical", "medium"} <= {f.severity for f in findings}


# -- ordinary model pickles ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted() -> dict[str, object]:
    X, y = load_iris(return_X_y=True)
    return {
        "forest": RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y),
        "pipeline": make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(X, y),
        "log1p": make_pipeline(FunctionTransformer(np.log1p),
                               LogisticRegression(max_iter=300)).fit(X, y),
        "rng": np.random.default_rng(0),
        "arrays": {"a": np.arange(5.0), "b": np.zeros((2, 2), dtype="U3")},
    }


@pytest.mark.parametrize("protocol", [0, 2, 4, 5], ids=lambda p: f"protocol-{p}")
@pytest.mark.parametrize("name", ["forest", "pipeline", "log1p", "rng", "arrays"])
def test_ordinary_pickles_are_info_only(fitted: dict[str, object], name: str,
                                        protocol: int) -> None:
    findings = _scan(pickle.dumps(fitted[name], protocol=protocol))
    assert [(f.severity, f.rule) for f in findings] == [("info", "pickle.format")]
    assert "0 unknown, 0 dangerous" in findings[0].message


def test_a_users_own_class_is_low() -> None:
    findings = _scan(pickle.dumps(_Custom()))
    low = [f for f in findings if f.severity == "low"]
    assert [f.rule for f in low] == ["pickle.unknown-global"]
    assert f"{__name__}._Custom" in low[0].message


CLASSIFIED = [
    ("posix", "system", "dangerous"), ("nt", "system", "dangerous"),
    ("subprocess", "Popen", "dangerous"), ("builtins", "eval", "dangerous"),
    ("builtins", "map", "dangerous"), ("runpy", "run_path", "dangerous"),
    ("numpy.testing._private.utils", "runstring", "dangerous"),
    ("torch.serialization", "_load", "dangerous"), ("pickle", "loads", "dangerous"),
    ("marshal", "loads", "dangerous"), ("webbrowser", "open", "dangerous"),
    ("socket", "create_connection", "dangerous"), ("shutil", "rmtree", "dangerous"),
    ("importlib", "import_module", "dangerous"), ("os.path", "join", "dangerous"),
    ("sklearn.utils._testing", "assert_run_python_script_without_output", "dangerous"),
    ("builtins", "set", "safe"), ("copy_reg", "_reconstructor", "safe"),
    ("numpy._core.multiarray", "_reconstruct", "safe"), ("numpy", "float64", "safe"),
    ("sklearn.tree._classes", "DecisionTreeClassifier", "safe"),
    ("torch._utils", "_rebuild_tensor_v2", "safe"), ("collections", "OrderedDict", "safe"),
    ("mypackage.models", "Net", "unknown"), ("sklearn.base", "BaseEstimator.fit", "unknown"),
    ("__main__", "Model", "unknown"),
]


@pytest.mark.parametrize(("module", "name", "verdict"), CLASSIFIED,
                         ids=[f"{m}.{n}" for m, n, _ in CLASSIFIED])
def test_classify_global(module: str, name: str, verdict: str) -> None:
    assert classify_global(module, name)[0] == verdict


# -- joblib --------------------------------------------------------------------------------------
@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)],
                         ids=["raw", "zlib", "gzip", "bz2", "xz", "lzma"])
def test_joblib_payload_after_arrays_is_found(tmp_path: Path, fitted: dict[str, object],
                                              compress: object) -> None:
    from modelyard.security.scan import scan_path

    path = tmp_path / "model.joblib"
    # The forest's trees hold structured arrays: their raw bytes precede the payload.
    joblib.dump([fitted["forest"], np.arange(1000.0), _Evil()], path, compress=compress)
    rules = _rules(scan_path(path))
    assert ("critical", "pickle.dangerous-global") in rules
    assert not any(severity == "medium" for severity, _ in rules)


def test_joblib_object_arrays_are_nested_pickles(tmp_path: Path) -> None:
    path = tmp_path / "objects.joblib"
    joblib.dump({"objects": np.array([_Evil(), 1], dtype=object)}, path)
    with open(path, "rb") as fh:
        analysis = analyze_pickle(fh)
    assert analysis.complete
    assert analysis.streams == 2
    assert any(g.qualified.endswith(".system") and g.called for g in analysis.globals)


def test_an_ordinary_joblib_model_is_info_only(tmp_path: Path, fitted: dict[str, object]) -> None:
    from modelyard.security.scan import scan_path

    path = tmp_path / "forest.joblib"
    joblib.dump(fitted["forest"], path)
    assert {f.severity for f in scan_path(path)} == {"info"}


# -- several pickles in one file -----------------------------------------------------------------
FOLLOWED = [
    # Raw bytes after the pickle that read as a bogus GLOBAL: data for the loader, not opcodes.
    ("raw-data", pickle.dumps({"a": 1}) + b"cjunk\nname\n\xff" + bytes(range(256)), set(),
     "not a pickle"),
    # torch's legacy loader reads several pickles: a payload in the second one counts.
    ("evil-second", pickle.dumps(1) + pickle.dumps(_Evil()), {"critical"}, None),
    # ... even when it is malformed after the call (the loader fails only after running it).
    ("evil-second-malformed", pickle.dumps(1) + pickle.dumps(_Evil(), protocol=2)[:-1]
     + b"\xff", {"critical", "medium"}, "malformed after importing dangerous globals"),
]


@pytest.mark.parametrize(("label", "data", "severities", "text"), FOLLOWED,
                         ids=[f[0] for f in FOLLOWED])
def test_what_follows_the_first_pickle(label: str, data: bytes, severities: set[str],
                                       text: str | None) -> None:
    findings = _scan(data)
    assert {f.severity for f in findings} - {"info"} == severities
    if text is not None:
        assert any(text in f.message for f in findings), findings
