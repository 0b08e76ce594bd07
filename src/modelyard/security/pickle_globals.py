"""Which globals a pickle may import: a denylist, an allowlist, and everything else unknown.

:func:`classify_global` answers for one ``module.name`` as the unpickler would resolve it
(Python 2 names mapped, dotted protocol-4 names walked):

* **dangerous**: the module (or a parent package) is on :data:`_DANGEROUS_MODULES`
  (commands, code, imports, native code, nested deserialization, files, network,
  introspection), the name is on :data:`_DANGEROUS_NAMES` (``builtins.eval``,
  ``numpy.load``, ``torch._load``...), it is a builtin other than a container or scalar
  type, or a dotted name walks through any of those;
* **safe**: named on :data:`_SAFE_NAMES`, or a plain name in one of :data:`_SAFE_PACKAGES`
  (numpy, scikit-learn, scipy.sparse/special/stats, pandas internals, torch's rebuilders);
* **unknown**: everything else.

The lists are data: extend them here, with the reason a name is dangerous, and add a row to
the table test in ``tests/unit/security/test_scan_pickles.py``.
"""

from __future__ import annotations

import _compat_pickle
import re
from typing import Literal

__all__ = ["Verdict", "classify_global"]

Verdict = Literal["dangerous", "safe", "unknown"]

# -- the denylist ------------------------------------------------------------------------------
# Modules (with their submodules) that a model has no business importing. Value: what they
# let a pickle do, for the message. Severity: high when imported, critical when called.
_DANGEROUS_MODULES: dict[str, str] = {
    "os": "runs commands and reads, writes and deletes files",
    "posix": "runs commands and reads, writes and deletes files",
    "nt": "runs commands and reads, writes and deletes files",
    "_posixsubprocess": "runs commands",
    "subprocess": "runs commands",
    "pty": "runs commands in a terminal",
    "commands": "runs commands",
    "popen2": "runs commands",
    "platform": "runs commands",
    "runpy": "runs Python modules and files",
    "code": "runs Python code",
    "codeop": "compiles Python code",
    "timeit": "runs Python code given as text",
    "doctest": "runs Python code given as text",
    "profile": "runs Python code given as text",
    "cProfile": "runs Python code given as text",
    "trace": "runs Python code given as text",
    "pdb": "runs Python code given as text",
    "bdb": "runs Python code given as text",
    "types": "builds functions from raw code objects",
    "marshal": "deserializes code objects",
    "pickle": "unpickles nested, unscanned data",
    "_pickle": "unpickles nested, unscanned data",
    "cPickle": "unpickles nested, unscanned data",
    "dill": "unpickles nested, unscanned data",
    "cloudpickle": "unpickles nested, unscanned data",
    "shelve": "unpickles nested, unscanned data",
    "importlib": "imports arbitrary modules",
    "imp": "imports arbitrary modules",
    "pkgutil": "imports arbitrary modules",
    "zipimport": "imports arbitrary modules",
    "site": "changes the import path",
    "sys": "changes the interpreter (modules, paths, hooks)",
    "ctypes": "calls native code and loads shared libraries",
    "_ctypes": "calls native code",
    "cffi": "calls native code",
    "multiprocessing": "starts processes running arbitrary callables",
    "concurrent": "runs arbitrary callables in threads or processes",
    "threading": "runs arbitrary callables in threads",
    "_thread": "runs arbitrary callables in threads",
    "asyncio": "runs commands and opens connections",
    "signal": "installs signal handlers",
    "atexit": "registers code to run at exit",
    "gc": "reaches every live object",
    "inspect": "reaches frames and globals",
    "builtins.__dict__": "reaches every builtin",
    "shutil": "copies, moves and deletes files",
    "tempfile": "creates files",
    "io": "opens files",
    "_io": "opens files",
    "fileinput": "reads files",
    "glob": "lists files",
    "socket": "opens network connections",
    "_socket": "opens network connections",
    "ssl": "opens network connections",
    "http": "makes HTTP requests",
    "urllib": "makes HTTP requests",
    "urllib2": "makes HTTP requests",
    "urllib3": "makes HTTP requests",
    "requests": "makes HTTP requests",
    "httpx": "makes HTTP requests",
    "aiohttp": "makes HTTP requests",
    "ftplib": "opens network connections",
    "smtplib": "sends mail",
    "telnetlib": "opens network connections",
    "poplib": "opens network connections",
    "imaplib": "opens network connections",
    "xmlrpc": "makes remote calls",
    "webbrowser": "opens URLs in a browser",
    "distutils": "builds and runs code",
    "setuptools": "builds and runs code",
    "pip": "installs packages",
    "ensurepip": "installs packages",
    "venv": "creates environments and runs commands",
    "numpy.testing": "runs Python code given as text (numpy.testing...runstring)",
    "numpy.f2py": "compiles and imports native code",
    "numpy.distutils": "builds and runs code",
    "numpy.ctypeslib": "loads shared libraries",
    "torch.hub": "downloads and runs code",
    "sklearn.utils._testing": "runs Python scripts",
    "sklearn.utils.estimator_checks": "imports and runs test code",
    "pandas.io": "reads files and unpickles nested data",
    "pandas.core.computation": "evaluates expressions given as text",
}

# Single names that are dangerous in modules that are otherwise fine.
_DANGEROUS_NAMES: dict[tuple[str, str], str] = {
    **{("builtins", n): "runs or compiles Python code given as text"
       for n in ("eval", "exec", "execfile", "compile", "__build_class__")},
    ("builtins", "__import__"): "imports arbitrary modules",
    ("builtins", "open"): "opens files",
    ("builtins", "input"): "reads the terminal",
    ("builtins", "breakpoint"): "starts a debugger",
    **{("builtins", n): "reaches any attribute or variable, the start of most pickle exploits"
       for n in ("getattr", "setattr", "delattr", "globals", "locals", "vars")},
    **{(m, n): "reaches any attribute or calls any method by name"
       for m in ("operator", "_operator") for n in ("attrgetter", "methodcaller")},
    **{("numpy", n): "reads or writes files (numpy.load also unpickles with allow_pickle)"
       for n in ("load", "loads", "save", "savez", "savez_compressed", "savetxt", "loadtxt",
                 "genfromtxt", "fromfile", "fromregex", "memmap", "DataSource", "lib")},
    **{(m, "load"): "unpickles nested, unscanned data (allow_pickle)"
       for m in ("numpy.lib.npyio", "numpy.lib._npyio_impl")},
    ("numpy.lib.format", "read_array"): "unpickles nested, unscanned data (allow_pickle)",
    ("numpy", "seterrcall"): "installs an arbitrary callback",
    **dict.fromkeys(
        [("torch", "load"), ("torch", "_load"), ("torch.serialization", "load"),
         ("torch.serialization", "_load"), ("torch.serialization", "_legacy_load"),
         ("torch.storage", "_load_from_bytes"), ("joblib", "load"),
         ("joblib.numpy_pickle", "load"), ("pandas", "read_pickle")],
        "unpickles nested, unscanned data"),
    ("pandas", "eval"): "evaluates expressions given as text",
    ("pandas", "read_csv"): "reads files or URLs",
    ("joblib.numpy_pickle_compat", "NDArrayWrapper"): "reads and unpickles a file named in "
                                                      "the pickle (old joblib format)",
}

# Attribute names that reach code when they appear anywhere in a dotted name.
_DANGEROUS_ATTRIBUTES = frozenset({
    "system", "popen", "exec", "eval", "compile", "__import__", "__builtins__", "__globals__",
    "__subclasses__", "__dict__", "__getattribute__", "__code__", "__reduce__", "__reduce_ex__",
    "spawn", "execv", "execve", "execvp", "run", "call", "check_call", "check_output", "Popen",
    "load", "loads", "import_module",
})

# -- the allowlist ---------------------------------------------------------------------------
_SAFE_NAMES: dict[str, frozenset[str]] = {
    "builtins": frozenset({"set", "frozenset", "bytearray", "bytes", "complex", "slice", "range",
                           "dict", "list", "tuple", "int", "float", "bool", "str", "object",
                           "type", "Ellipsis", "NotImplemented"}),
    "collections": frozenset({"OrderedDict", "defaultdict", "deque", "Counter"}),
    "copyreg": frozenset({"_reconstructor", "__newobj__", "__newobj_ex__"}),
    "_codecs": frozenset({"encode"}),
    "codecs": frozenset({"encode"}),
    "datetime": frozenset({"datetime", "date", "time", "timedelta", "timezone"}),
    "decimal": frozenset({"Decimal"}),
    "fractions": frozenset({"Fraction"}),
    "uuid": frozenset({"UUID"}),
    "pathlib": frozenset({"Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath",
                          "PureWindowsPath"}),
    "numpy.core.multiarray": frozenset({"_reconstruct", "scalar"}),
    "numpy._core.multiarray": frozenset({"_reconstruct", "scalar"}),
    "numpy.core.numeric": frozenset({"_frombuffer"}),
    "numpy._core.numeric": frozenset({"_frombuffer"}),
    "numpy.ma.core": frozenset({"_mareconstruct", "MaskedArray"}),
    "numpy.random": frozenset({"__RandomState_ctor"}),
    "numpy.random._pickle": frozenset({"__randomstate_ctor", "__generator_ctor",
                                       "__bit_generator_ctor"}),
    "numpy.random._mt19937": frozenset({"MT19937"}),
    "numpy.random._pcg64": frozenset({"PCG64", "PCG64DXSM"}),
    "numpy.random._philox": frozenset({"Philox"}),
    "numpy.random._sfc64": frozenset({"SFC64"}),
    "numpy.random.mtrand": frozenset({"RandomState"}),
    "numpy.random._generator": frozenset({"Generator"}),
    "numpy.random.bit_generator": frozenset({"SeedSequence", "__pyx_unpickle_SeedSequence"}),
    "joblib.numpy_pickle": frozenset({"NumpyArrayWrapper"}),
    "pandas": frozenset({"DataFrame", "Series", "Index", "RangeIndex", "MultiIndex",
                         "CategoricalIndex", "DatetimeIndex", "Categorical", "CategoricalDtype",
                         "StringDtype", "Timestamp", "Timedelta", "Period", "Interval"}),
    "pyarrow.lib": frozenset({"_restore_array", "py_buffer", "type_for_alias"}),
    "torch": frozenset({"Size", "device", "dtype", "Tensor", "FloatStorage", "DoubleStorage",
                        "HalfStorage", "BFloat16Storage", "LongStorage", "IntStorage",
                        "ShortStorage", "CharStorage", "ByteStorage", "BoolStorage",
                        "TypedStorage", "UntypedStorage", "float32", "float64", "float16",
                        "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"}),
    "torch._utils": frozenset({"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3",
                               "_rebuild_parameter", "_rebuild_parameter_with_state",
                               "_rebuild_sparse_tensor", "_rebuild_qtensor",
                               "_rebuild_device_tensor_from_numpy",
                               "_rebuild_meta_tensor_no_storage", "_rebuild_wrapper_subclass"}),
    "torch._tensor": frozenset({"_rebuild_from_type_v2"}),
    "torch.storage": frozenset({"TypedStorage", "UntypedStorage"}),
    "torch.nn.parameter": frozenset({"Parameter"}),
    "torch.serialization": frozenset({"_get_layout"}),
    "xgboost.core": frozenset({"Booster"}),
    "lightgbm.basic": frozenset({"Booster"}),
}

# Packages whose plain (undotted) names are model code: estimators, array types, ufuncs.
# Their dangerous corners are in the denylist above, which is checked first.
_SAFE_PACKAGES = ("sklearn", "numpy", "scipy.sparse", "scipy.special", "scipy.stats",
                  "pandas.core", "pandas._libs", "pandas.arrays", "xgboost.sklearn",
                  "lightgbm.sklearn", "__torch__", "torch.jit._pickle")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _normalized(module: str, name: str) -> tuple[str, str]:
    """Python 2 names, as the unpickler maps them (``__builtin__`` is ``builtins``)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def classify_global(module: str, name: str) -> tuple[Verdict, str]:
    """Whether importing ``module.name`` from a pickle is dangerous, known safe or unknown,
    and why.

    >>> classify_global("posix", "system")[0]
    'dangerous'
    >>> classify_global("sklearn.linear_model._logistic", "LogisticRegression")[0]
    'safe'
    >>> classify_global("mypackage.models", "Net")[0]
    'unknown'
    """
    module, name = _normalized(module, name)
    reason = _DANGEROUS_NAMES.get((module, name))
    if reason is not None:
        return "dangerous", reason
    for package, why in _DANGEROUS_MODULES.items():
        if _within(module, package):
            return "dangerous", why
    parts = [*module.split("."), *name.split(".")]
    if "." in name:
        # Protocol 4 resolves dotted names attribute by attribute: 'sklearn' + 'base.os.system'
        # is os.system. Such a path is never allowlisted, and is dangerous when it walks
        # through a denylisted module or a dangerous attribute.
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if any(_within(prefix, p) for p in _DANGEROUS_MODULES):
                return "dangerous", f"its dotted name reaches {prefix}"
        if any(p in _DANGEROUS_ATTRIBUTES for p in parts):
            return "dangerous", "its dotted name reaches a function that runs code"
        return "unknown", "a dotted name that is not on the list of known-safe globals"
    if module == "builtins":
        if name in _SAFE_NAMES["builtins"]:
            return "safe", "a builtin container or scalar type"
        # Other builtins (map, iter, print, property...) have no place in a model's data.
        return "dangerous", "a builtin function that model data never needs"
    if name in _SAFE_NAMES.get(module, frozenset()):
        return "safe", "on the list of known-safe globals"
    if _IDENTIFIER.match(name) and any(_within(module, p) for p in _SAFE_PACKAGES):
        return "safe", "a class or function of a known model library"
    return "unknown", "not on the list of known-safe globals"
