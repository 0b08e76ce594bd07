"""Pickle streams inspected without unpickling: which globals they import, which they call.

Loading a pickle imports every global it names (``GLOBAL``, ``STACK_GLOBAL``, ``INST``) and
calls whatever ``REDUCE``, ``NEWOBJ``, ``OBJ`` and ``INST`` put in front of it: ``os.system``
with a command is three opcodes. This module walks the opcodes with
:func:`pickletools.genops` and a symbolic stack (strings, containers, memo), so that a name
assembled from memoized strings for ``STACK_GLOBAL`` is still resolved, and classifies every
global:

* **dangerous** (the denylist in :mod:`modelyard.security.pickle_globals`, by module or by
  name): commands, code, imports, files, network, nested deserialization. ``high`` when
  imported, ``critical`` when called.
* **known safe** (the allowlist): what numpy, scikit-learn, pandas, torch and the standard
  library's containers put in ordinary model pickles. No finding.
* **unknown**: everything else (your own classes, third-party estimators): ``low``, because
  loading imports and may call that package's code.

joblib files hold raw array bytes between pickle opcodes; the walker reads the array's
shape and dtype from the ``NumpyArrayWrapper`` it just built and steps over them, so the
opcodes after the arrays are inspected too. Anything it cannot walk is a ``medium`` finding:
an unparsed remainder is an unscanned remainder.

>>> import io, pickle
>>> [g.qualified for g in analyze_pickle(io.BytesIO(pickle.dumps({1: 2}))).globals]
[]
"""

from __future__ import annotations

import io
import math
import pickletools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

import numpy as np

from modelyard.security.findings import Finding, Severity
from modelyard.security.pickle_globals import Verdict, classify_global

__all__ = [
    "PickleAnalysis",
    "PickleGlobal",
    "Verdict",
    "analyze_pickle",
    "classify_global",
    "findings_for",
    "scan_pickle",
    "walk_stream",
]

_MAX_TEXT = 1024  # longer strings are not names; keep a placeholder instead of the text
_MAX_STREAMS = 64  # consecutive pickles in one file (torch's legacy format writes five)
_SKIP_CHUNK = 1 << 20

# -- the symbolic machine ----------------------------------------------------------------------
class _Sentinel:
    __slots__ = ("label",)

    def __init__(self, label: str) -> None:
        self.label = label

    def __repr__(self) -> str:
        return self.label


_MARK = _Sentinel("MARK")
_UNKNOWN = _Sentinel("?")


@dataclass(eq=False, slots=True)
class _Global:
    module: str
    name: str


@dataclass(eq=False, slots=True)
class _Obj:
    """What a call (REDUCE, NEWOBJ, OBJ, INST) leaves on the stack."""

    func: Any
    args: Any
    state: Any = None


@dataclass(slots=True)
class PickleGlobal:
    """A global a pickle imports: ``called`` if it also calls it (REDUCE, NEWOBJ, OBJ, INST)."""

    module: str
    name: str
    called: bool = False

    @property
    def qualified(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass
class PickleAnalysis:
    """What walking a pickle found. ``complete`` is False when part of it was not walked."""

    globals: list[PickleGlobal] = field(default_factory=list)
    streams: int = 0
    unresolved: list[str] = field(default_factory=list)
    extensions: list[int] = field(default_factory=list)
    persistent_ids: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    complete: bool = True
    _index: dict[tuple[str, str], PickleGlobal] = field(default_factory=dict, repr=False)

    def _add(self, module: str, name: str) -> PickleGlobal:
        key = (module, name)
        found = self._index.get(key)
        if found is None:
            found = self._index[key] = PickleGlobal(module, name)
            self.globals.append(found)
        return found

    def _problem(self, text: str) -> None:
        self.complete = False
        if text not in self.problems:
            self.problems.append(text)


class _Machine:
    """One pickle stream's stack and memo."""

    def __init__(self, stream: BinaryIO, result: PickleAnalysis, depth: int) -> None:
        self.stream = stream
        self.result = result
        self.depth = depth
        self.stack: list[Any] = []
        self.memo: dict[int, Any] = {}
        self.globals: dict[int, PickleGlobal] = {}  # id(_Global) -> its record

    def pop(self) -> Any:
        if not self.stack:
            self.result._problem("the stack underflows: the pickle is malformed")
            return _UNKNOWN
        return self.stack.pop()

    def pop_mark(self) -> list[Any]:
        items: list[Any] = []
        while self.stack:
            value = self.stack.pop()
            if value is _MARK:
                items.reverse()
                return items
            items.append(value)
        self.result._problem("an opcode needs a MARK that is not there: the pickle is malformed")
        items.reverse()
        return items

    def top(self) -> Any:
        return self.stack[-1] if self.stack else _UNKNOWN

    def global_(self, module: str, name: str) -> _Global:
        ref = _Global(module, name)
        self.globals[id(ref)] = self.result._add(module, name)
        return ref

    def called(self, func: Any) -> None:
        record = self.globals.get(id(func)) if isinstance(func, _Global) else None
        if record is not None:
            record.called = True

    def run(self) -> None:
        for op, arg, _pos in pickletools.genops(self.stream):
            if op.name == "STOP":
                self.pop()
                return
            self.step(op.name, arg)

    def step(self, name: str, arg: Any) -> None:  # noqa: PLR0915  # one branch per opcode
        stack = self.stack
        if name in _PUSHES_ARG:
            stack.append(_const(arg))
        elif name == "NONE":
            stack.append(None)
        elif name in ("NEWTRUE", "NEWFALSE"):
            stack.append(name == "NEWTRUE")
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name == "EMPTY_DICT":
            stack.append({})
        elif name == "EMPTY_SET":
            stack.append([])
        elif name == "MARK":
            stack.append(_MARK)
        elif name in ("LIST", "FROZENSET"):
            stack.append(self.pop_mark())
        elif name == "TUPLE":
            stack.append(tuple(self.pop_mark()))
        elif name == "DICT":
            items = self.pop_mark()
            stack.append(_pairs({}, items))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            count = int(name[-1])
            values = [self.pop() for _ in range(count)]
            stack.append(tuple(reversed(values)))
        elif name == "APPEND":
            value = self.pop()
            if isinstance(self.top(), list):
                self.top().append(value)
        elif name in ("APPENDS", "ADDITEMS"):
            items = self.pop_mark()
            if isinstance(self.top(), list):
                self.top().extend(items)
        elif name == "SETITEM":
            value, key = self.pop(), self.pop()
            if isinstance(self.top(), dict):
                _pairs(self.top(), [key, value])
        elif name == "SETITEMS":
            items = self.pop_mark()
            if isinstance(self.top(), dict):
                _pairs(self.top(), items)
        elif name == "POP":
            self.pop()
        elif name == "POP_MARK":
            self.pop_mark()
        elif name == "DUP":
            stack.append(self.top())
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            self.memo[int(arg)] = self.top()
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = self.top()
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if int(arg) not in self.memo:
                self.result._problem(f"memo entry {arg} is read before it is written")
            stack.append(self.memo.get(int(arg), _UNKNOWN))
        elif name == "GLOBAL":
            module, _, attr = str(arg).partition(" ")
            stack.append(self.global_(module, attr))
        elif name == "STACK_GLOBAL":
            attr, module = self.pop(), self.pop()
            if isinstance(module, str) and isinstance(attr, str):
                stack.append(self.global_(module, attr))
            else:
                self.result.unresolved.append(f"{_describe(module)}.{_describe(attr)}")
                stack.append(_UNKNOWN)
        elif name == "INST":
            module, _, attr = str(arg).partition(" ")
            ref = self.global_(module, attr)
            self.called(ref)
            stack.append(_Obj(ref, tuple(self.pop_mark())))
        elif name == "OBJ":
            items = self.pop_mark()
            cls = items[0] if items else _UNKNOWN
            self.called(cls)
            stack.append(_Obj(cls, tuple(items[1:])))
        elif name in ("REDUCE", "NEWOBJ"):
            args, func = self.pop(), self.pop()
            self.called(func)
            stack.append(_Obj(func, args))
        elif name == "NEWOBJ_EX":
            _kwargs, args, cls = self.pop(), self.pop(), self.pop()
            self.called(cls)
            stack.append(_Obj(cls, args))
        elif name == "BUILD":
            state = self.pop()
            target = self.top()
            if isinstance(target, _Obj):
                target.state = state
                if _is_joblib_wrapper(target.func):
                    self.skip_joblib_array(target)
        elif name in ("PERSID", "BINPERSID"):
            if name == "BINPERSID":
                self.pop()
            self.result.persistent_ids += 1
            stack.append(_UNKNOWN)
        elif name in ("EXT1", "EXT2", "EXT4"):
            self.result.extensions.append(int(arg))
            stack.append(_UNKNOWN)
        elif name == "NEXT_BUFFER":
            stack.append(_UNKNOWN)
        elif name in ("PROTO", "FRAME", "READONLY_BUFFER"):
            pass
        else:  # an opcode newer than this walker: apply its declared stack effect
            op = _OPS[name]
            if pickletools.markobject in op.stack_before:
                self.pop_mark()
            for _ in range(len([s for s in op.stack_before if s not in (
                    pickletools.markobject, pickletools.stackslice)])):
                self.pop()
            stack.extend(_UNKNOWN for _ in op.stack_after)

    def skip_joblib_array(self, wrapper: _Obj) -> None:
        """joblib writes an array's bytes right after its wrapper's BUILD: step over them."""
        state = wrapper.state if isinstance(wrapper.state, dict) else {}
        shape, dtype = state.get("shape"), state.get("dtype")
        info = _dtype_info(dtype)
        if not isinstance(shape, tuple) or not all(isinstance(n, int) for n in shape) or (
                info is None):
            self.result._problem("a joblib array's shape or dtype could not be read; the "
                                 "bytes after it were not inspected")
            raise _Stop
        typestr, elsize, has_object = info
        if has_object:
            # Object arrays are a nested pickle stream, which the loader unpickles too.
            walk_stream(self.stream, self.result, self.depth + 1)
            return
        try:
            itemsize = elsize if elsize > 0 else np.dtype(typestr).itemsize
        except TypeError:
            self.result._problem(f"a joblib array has an unknown dtype {typestr!r}; the bytes "
                                 "after it were not inspected")
            raise _Stop from None
        if state.get("numpy_array_alignment_bytes") is not None:
            padding = self.stream.read(1)
            if padding:
                _skip(self.stream, padding[0])
        _skip(self.stream, math.prod(shape) * itemsize)


class _Stop(Exception):
    """The rest of the stream cannot be walked (the reason is already recorded)."""


_OPS = {op.name: op for op in pickletools.opcodes}

_PUSHES_ARG = frozenset({
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
    "STRING", "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
    "BYTEARRAY8", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8",
})


def _const(arg: Any) -> Any:
    # Large strings and byte blobs are data (array contents), never names: do not keep them.
    if isinstance(arg, str | bytes | bytearray) and len(arg) > _MAX_TEXT:
        return _UNKNOWN
    return arg


def _pairs(target: dict[Any, Any], items: list[Any]) -> dict[Any, Any]:
    for key, value in zip(items[::2], items[1::2], strict=False):
        if isinstance(key, str | int | float | bool | bytes | tuple) or key is None:
            try:
                target[key] = value
            except TypeError:  # a tuple holding something unhashable
                continue
    return target


def _describe(value: Any) -> str:
    if isinstance(value, _Obj):
        return "<result of a call>"
    if isinstance(value, _Global):
        return f"<{value.module}.{value.name}>"
    return "<?>" if value is _UNKNOWN else f"<{type(value).__name__}>"


def _is_joblib_wrapper(func: Any) -> bool:
    return isinstance(func, _Global) and (func.module, func.name) == (
        "joblib.numpy_pickle", "NumpyArrayWrapper")


def _dtype_info(dtype: Any, depth: int = 0) -> tuple[str, int, bool] | None:
    """(type string, element size or -1, holds Python objects) of a pickled ``numpy.dtype``,
    or None when it cannot be read (the walk then stops, reporting why)."""
    if depth > 16 or not isinstance(dtype, _Obj) or not isinstance(dtype.func, _Global):
        return None
    if (dtype.func.module, dtype.func.name) not in (("numpy", "dtype"),
                                                    ("numpy.core.multiarray", "dtype")):
        return None
    args = dtype.args if isinstance(dtype.args, tuple) else ()
    if not args or not isinstance(args[0], str):
        return None
    state = dtype.state if isinstance(dtype.state, tuple) else ()
    # numpy.dtype.__reduce__ state: (version, byteorder, subdtype, names, fields, elsize, ...)
    elsize = state[5] if len(state) > 5 and isinstance(state[5], int) else -1
    order = state[1] if len(state) > 1 and isinstance(state[1], str) else ""
    has_object = args[0].startswith("O")
    subdtype = state[2] if len(state) > 2 else None
    fields = state[4] if len(state) > 4 else None
    inner: list[Any] = []
    if isinstance(subdtype, tuple) and subdtype:
        inner.append(subdtype[0])
    if isinstance(fields, dict):
        inner += [v[0] for v in fields.values() if isinstance(v, tuple) and v]
    elif fields is not None:
        return None
    for sub in inner:
        info = _dtype_info(sub, depth + 1)
        if info is None:
            return None
        has_object = has_object or info[2]
    return order + args[0], elsize, has_object


def _skip(stream: BinaryIO, count: int) -> None:
    if count <= 0:
        return
    if stream.seekable():
        stream.seek(count, io.SEEK_CUR)
        return
    while count > 0:
        chunk = stream.read(min(count, _SKIP_CHUNK))
        if not chunk:
            return
        count -= len(chunk)


def walk_stream(stream: BinaryIO, result: PickleAnalysis, depth: int = 0) -> None:
    """Walk one pickle from the stream's position to its STOP, recording into ``result``."""
    if depth > 8:
        result._problem("pickles nested more than 8 deep were not walked")
        raise _Stop
    result.streams += 1
    _Machine(stream, result, depth).run()


def analyze_pickle(stream: BinaryIO) -> PickleAnalysis:
    """Walk every pickle in ``stream`` (several may follow each other, as in torch's legacy
    format and joblib files) without unpickling anything.

    >>> import io, os, pickle
    >>> class Evil:
    ...     def __reduce__(self):
    ...         return (os.system, ("echo pwned",))
    >>> [(g.qualified, g.called) for g in analyze_pickle(io.BytesIO(pickle.dumps(Evil()))).globals]
    [('posix.system', True)]
    """
    result = PickleAnalysis()
    if not stream.seekable():
        stream = cast(BinaryIO, _Counted(stream))  # genops asks for positions
    else:
        stream = cast(BinaryIO, _Chunked(stream))
    for index in range(_MAX_STREAMS):
        if index and not _more(stream):
            break
        # A later pickle is walked apart and kept only if it parses: the bytes after the
        # pickles are often raw data for the loader (torch's legacy storages), which could
        # read as a few bogus opcodes.
        target = result if index == 0 else PickleAnalysis()
        try:
            with warnings.catch_warnings():
                # pickletools decodes STRING arguments with codecs.escape_decode, which warns
                # (an error under -W error) on escapes like "\\ò" that arbitrary bytes hold:
                # what the bytes mean is this walk's business, not a deprecation to report.
                warnings.simplefilter("ignore", DeprecationWarning)
                walk_stream(stream, target)
        except _Stop:
            _merge(result, target, everything=True)
            break
        except (ValueError, EOFError, IndexError, KeyError, OverflowError, UnicodeError,
                TypeError) as exc:
            if index == 0:
                result._problem(f"the opcodes could not be parsed: {exc}")
            elif _merge(result, target, everything=False):
                # Raw data does not name os.system: a malformed pickle that does is an attack
                # on loaders that read several pickles, and runs before the loader fails.
                result._problem(f"pickle {index + 1} is malformed after importing dangerous "
                                f"globals: {exc}")
            else:
                result.notes.append(
                    f"the bytes after pickle {index} are not a pickle (raw data for the "
                    "loader) and were not inspected")
            break
        _merge(result, target, everything=True)
        if _more(stream) is None:
            result.notes.append("the stream cannot be peeked; only its first pickle was walked")
            break
    else:
        result._problem(f"more than {_MAX_STREAMS} pickles follow each other; the rest was "
                        "not inspected")
    return result


def _merge(into: PickleAnalysis, part: PickleAnalysis, *, everything: bool) -> bool:
    """Add a later stream's findings to ``into`` (only its dangerous globals unless
    ``everything``); True when it added a dangerous global."""
    if part is into:
        return False
    dangerous = False
    for record in part.globals:
        is_dangerous = classify_global(record.module, record.name)[0] == "dangerous"
        dangerous = dangerous or is_dangerous
        if everything or is_dangerous:
            into._add(record.module, record.name).called |= record.called
    if everything:
        into.streams += part.streams
        into.unresolved += part.unresolved
        into.extensions += part.extensions
        into.persistent_ids += part.persistent_ids
        into.notes += part.notes
        for problem in part.problems:
            into._problem(problem)
    else:
        into.streams += 1
    return dangerous


def _locations(analysis: PickleAnalysis) -> Iterator[tuple[PickleGlobal, Verdict, str]]:
    for record in analysis.globals:
        verdict, reason = classify_global(record.module, record.name)
        yield record, verdict, reason


def scan_pickle(stream: BinaryIO, location: str) -> list[Finding]:
    """Findings for the pickle(s) in ``stream``: dangerous globals (``critical`` when called,
    ``high`` when only imported), unresolvable imports (``high``), unknown globals (``low``),
    parts that could not be walked (``medium``), and an ``info`` summary.

    >>> import io, pickle
    >>> [f.severity for f in scan_pickle(io.BytesIO(pickle.dumps([1, 2])), "x.pkl")]
    ['info']
    """
    analysis = analyze_pickle(stream)
    return findings_for(analysis, location)


_CHUNK = 64 << 20


def _read_chunked(stream: BinaryIO, size: int | None) -> bytes:
    """``stream.read(size)``, a chunk at a time: an opcode's length field is 8 bytes an
    attacker (or random data) chooses, and a file object allocates what it is asked for
    before it reads (a MemoryError at 2**62). Stops at the end of the stream."""
    if size is None or size < 0:
        return stream.read()
    if size <= _CHUNK:
        return stream.read(size)
    parts, left = [], size
    while left > 0:
        part = stream.read(min(left, _CHUNK))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


class _Chunked:
    """A seekable stream whose reads go through :func:`_read_chunked`."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def read(self, size: int = -1) -> bytes:
        return _read_chunked(self.stream, size)

    def __getattr__(self, name: str) -> Any:  # readline, tell, seek, seekable, peek
        return getattr(self.stream, name)


class _Counted:
    """A forward-only stream that knows its position (decompressed joblib files)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.position = 0
        self.peek = getattr(stream, "peek", None)

    def read(self, size: int = -1) -> bytes:
        data = _read_chunked(self.stream, size)
        self.position += len(data)
        return data

    def readline(self) -> bytes:
        data = self.stream.readline()
        self.position += len(data)
        return data

    def tell(self) -> int:
        return self.position

    def seekable(self) -> bool:
        return False


def _more(stream: BinaryIO) -> bool | None:
    """Whether bytes follow (None: the stream cannot tell without consuming them)."""
    peek = getattr(stream, "peek", None)
    if peek is not None:
        return bool(peek(1))
    if stream.seekable():
        here = stream.tell()
        more = bool(stream.read(1))
        stream.seek(here)
        return more
    return None


def findings_for(analysis: PickleAnalysis, location: str) -> list[Finding]:
    """Turn an analysis into findings (see :func:`scan_pickle`)."""
    findings: list[Finding] = []
    counts = {"dangerous": 0, "safe": 0, "unknown": 0}
    for record, verdict, reason in _locations(analysis):
        counts[verdict] += 1
        if verdict == "dangerous":
            severity: Severity = "critical" if record.called else "high"
            verb = "calls" if record.called else "imports"
            findings.append(Finding(
                severity, "pickle.dangerous-global", location,
                f"Loading this pickle {verb} {record.qualified}, which {reason}.",
                "Do not load this file. Ask its author for a safe format (skops, ONNX) or "
                "re-create the model yourself."))
        elif verdict == "unknown":
            verb = "calls" if record.called else "imports"
            findings.append(Finding(
                "low", "pickle.unknown-global", location,
                f"Loading this pickle {verb} {record.qualified} ({reason}).",
                "Check that you trust the package that defines it."))
    for name in analysis.unresolved:
        findings.append(Finding(
            "high", "pickle.unresolved-global", location,
            f"A STACK_GLOBAL opcode imports a name computed while loading ({name}); it cannot "
            "be checked without running the pickle.",
            "Ordinary pickles name their globals with plain strings; treat this file as "
            "hostile."))
    for code in analysis.extensions:
        findings.append(Finding(
            "medium", "pickle.extension-code", location,
            f"The pickle imports extension-registry code {code}, which names a global only "
            "the loading process knows.",
            "Ordinary pickles do not use the copyreg extension registry; find out why it "
            "does."))
    if not analysis.complete:
        findings.append(Finding(
            "medium", "pickle.incomplete", location,
            f"Part of this pickle was not inspected: {'; '.join(analysis.problems)}.",
            "Treat what was not inspected as unsafe: do not load the file unless you trust "
            "its author."))
    findings.append(Finding(
        "info", "pickle.format", location,
        f"A pickle ({analysis.streams} stream(s)): loading it runs the code its globals name. "
        f"It references {len(analysis.globals)} global(s): {counts['safe']} known safe, "
        f"{counts['unknown']} unknown, {counts['dangerous']} dangerous"
        + (f"; {analysis.persistent_ids} persistent id(s) resolved by the loader"
           if analysis.persistent_ids else "")
        + "".join(f"; {note}" for note in analysis.notes) + ".",
        "Prefer skops or ONNX, which load without running code from the file."))
    return findings
