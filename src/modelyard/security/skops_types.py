"""skops files: which types modelyard trusts in them, and importing skops cheaply.

skops refuses to load types it does not know. modelyard additionally trusts types defined
inside scikit-learn itself (such as ``sklearn.tree._tree.Tree``, which every forest holds):
they are rebuilt from arrays, not called; so are public numpy and scipy.special ufuncs
(``FunctionTransformer(np.log1p)``), as skops trusts them by default. Anything else must be
trusted by name at registration. The sklearn runtime applies this rule when it saves and
loads a model; the scanner (``modelyard scan``) reports by the same rule, so both live here,
below both.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from collections.abc import Iterable
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

from modelyard.errors import UnsafeModelError

__all__ = ["check_trusted_types", "import_sklearn", "is_trusted_type", "skops_io"]

# Hidden while skops is imported (an import of them fails fast, and skops skips them):
# - sklearn's array-API shims for torch, cupy and dask, which import those frameworks when
#   installed (about 1.4 s and 180 MB for torch alone, in every process that loads a model);
# - the gradient-boosting binning module, whose import pulls in all of sklearn.ensemble.
_HIDDEN = (
    *(f"sklearn.externals.array_api_compat.{name}" for name in ("torch", "cupy", "dask")),
    "sklearn.ensemble._hist_gradient_boosting.binning",
)


def skops_io() -> Any:
    """The ``skops.io`` module, imported without its expensive default listings.

    >>> skops_io().get_untrusted_types  # doctest: +SKIP
    <function get_untrusted_types at 0x...>
    """
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    import_sklearn()
    import sklearn.utils

    hidden = [m for m in _HIDDEN if m not in sys.modules]
    for module in hidden:
        sys.modules[module] = None  # type: ignore[assignment]  # makes the import fail fast
    # skops lists at import what it trusts by default. modelyard never relies on those lists:
    # it trusts by its own rule (is_trusted_type, below) and passes the trusted names
    # explicitly on every load, so skops is imported with the lists empty:
    # - scikit-learn's estimators: that walk imports every sklearn module (0.2-0.4 s and 12
    #   MiB in every process that loads a model);
    # - numpy's and scipy.special's ufuncs: each name is found by scanning every loaded
    #   module (0.1-0.2 s, measured here); our rule resolves the few a file names instead;
    # - scikit-learn's gradient-boosting internals, whose import pulls in sklearn.ensemble
    #   for a model that may have none (hidden above; they are sklearn's types, trusted).
    listing = sklearn.utils.all_estimators
    sklearn.utils.all_estimators = _no_estimators
    finder = _EmptyUfuncListing()
    sys.meta_path.insert(0, finder)
    try:
        import skops.io
    finally:
        sklearn.utils.all_estimators = listing
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
        finder.restore()
        for module in hidden:
            if sys.modules.get(module, 0) is None:
                del sys.modules[module]
    return skops.io


def import_sklearn() -> None:
    """Import scikit-learn without importing pandas on its behalf.

    ``sklearn.utils.fixes`` imports pandas (and pandas pyarrow) when scikit-learn is imported,
    for no use of its own: its one pandas helper is handed pandas by its caller. Everything
    in scikit-learn (and narwhals, which it asks) that meets a DataFrame imports pandas where
    it needs it, or looks for it in ``sys.modules``: a DataFrame cannot exist before pandas is
    imported. So that one import is refused and its name bound to a stand-in that imports
    pandas if it is ever used. A serving process whose model never sees a DataFrame saves
    about 63 MiB and 0.3-0.5 s (measured here); one that does imports pandas when it loads
    such a model (the sklearn runtime builds frames for models fitted with feature names).
    """
    if "sklearn.utils" in sys.modules:
        return
    if "pandas" in sys.modules:
        importlib.import_module("sklearn.utils")
        return
    refuse = _RefusePandasToFixes()
    sys.meta_path.insert(0, refuse)
    try:
        importlib.import_module("sklearn.utils")
    finally:
        if refuse in sys.meta_path:
            sys.meta_path.remove(refuse)
    fixes = sys.modules.get("sklearn.utils.fixes")
    if fixes is not None and getattr(fixes, "pd", 0) is None:
        fixes.pd = _DeferredPandas()  # type: ignore[attr-defined]


class _RefusePandasToFixes(importlib.abc.MetaPathFinder):
    """Refuses ``import pandas`` to ``sklearn.utils.fixes`` alone. It asks who imports by
    looking at the importing frame rather than hiding pandas from the whole process: another
    thread may import pandas for real at the same moment."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> ModuleSpec | None:
        if name != "pandas":
            return None
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.startswith("<frozen importlib"):
            frame = frame.f_back  # type: ignore[assignment]
        if frame is not None and frame.f_globals.get("__name__") == "sklearn.utils.fixes":
            raise ModuleNotFoundError("pandas is imported when used", name="pandas")
        return None


class _DeferredPandas:
    """Stands for the pandas module until an attribute is asked of it, then imports it."""

    def __getattr__(self, attr: str) -> Any:
        import pandas

        return getattr(pandas, attr)


def _no_estimators(*args: Any, **kwargs: Any) -> list[tuple[str, type]]:
    return []


class _EmptyUfuncListing(importlib.abc.MetaPathFinder):
    """While skops imports: its helper listing a module's public ufuncs lists none.

    The helper lives in ``skops.io._utils``, imported by skops' own package ``__init__``
    just before the listings run, so it is swapped as that module finishes loading (and put
    back afterwards: nothing else in skops calls it)."""

    def __init__(self) -> None:
        self.module: ModuleType | None = None
        self.original: Any = None

    def find_spec(self, name: str, path: Any, target: Any = None) -> ModuleSpec | None:
        if name != "skops.io._utils":
            return None
        sys.meta_path.remove(self)  # find the real spec, and only once
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            self.module, self.original = module, module.get_public_type_names
            module.get_public_type_names = _no_public_names  # type: ignore[attr-defined]

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec

    def restore(self) -> None:
        if self.module is not None:
            self.module.get_public_type_names = self.original  # type: ignore[attr-defined]


def _no_public_names(module: ModuleType, oftype: type) -> list[str]:
    return []


def is_trusted_type(qualified: str) -> bool:
    """True for a type modelyard trusts in a skops file without being told: one defined
    inside scikit-learn (such as ``sklearn.tree._tree.Tree``), or a public numpy or
    scipy.special ufunc (which skops trusts by default).

    >>> is_trusted_type("sklearn.tree._tree.Tree"), is_trusted_type("numpy.log1p")
    (True, True)
    >>> is_trusted_type("mypkg.Model"), is_trusted_type("numpy.load")
    (False, False)
    """
    return qualified.startswith("sklearn.") or _is_public_ufunc(qualified)


def _is_public_ufunc(qualified: str) -> bool:
    # Resolved among modules already imported: a name from a file never imports anything.
    module, _, name = qualified.rpartition(".")
    root = module.partition(".")[0]
    if root not in ("numpy", "scipy") or not name:
        return False
    public = sys.modules.get("numpy" if root == "numpy" else "scipy.special")
    owner = sys.modules.get(module)
    if public is None or owner is None:
        return False
    obj = getattr(public, name, None)
    return obj is not None and getattr(owner, name, None) is obj and _is_ufunc(obj)


def _is_ufunc(obj: object) -> bool:
    import numpy as np

    if isinstance(obj, np.ufunc):
        return True
    # scipy 2 wraps some scipy.special ufuncs in objects sharing one base class.
    return any(c.__name__ == "_UFuncWrapper" and c.__module__.startswith("scipy.special")
               for c in type(obj).__mro__)


def check_trusted_types(untrusted: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """The types to trust when loading a skops file, or :class:`UnsafeModelError` naming the
    ones that are neither scikit-learn's nor in ``allowed``.

    ``untrusted`` is what ``skops.io.get_untrusted_types`` reports for the file.

    >>> check_trusted_types(["sklearn.tree._tree.Tree", "mypkg.Model"], ["mypkg.Model"])
    ['mypkg.Model', 'sklearn.tree._tree.Tree']
    """
    names = sorted(set(untrusted))
    permitted = set(allowed)
    refused = [t for t in names if not is_trusted_type(t) and t not in permitted]
    if refused:
        raise UnsafeModelError(
            f"The model contains types that skops does not trust by default: {refused}. "
            "Loading them could run code.",
            hint="If you trust them, pass trusted_types=[...] to register() "
            "(CLI: --trust-type NAME).",
        )
    return names
