"""skops files: which types modelyard trusts in them, and importing skops cheaply.

skops refuses to load types it does not know. modelyard additionally trusts types defined
inside scikit-learn itself (such as ``sklearn.tree._tree.Tree``, which every forest holds):
they are rebuilt from arrays, not called. Anything else must be trusted by name at
registration. The sklearn runtime applies this rule when it saves and loads a model; the
scanner (``modelyard scan``) reports by the same rule, so both live here, below both.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from modelyard.errors import UnsafeModelError

__all__ = ["check_trusted_types", "is_sklearn_type", "skops_io"]

# When skops is imported it lists scikit-learn's estimators, and the package walk behind that
# imports sklearn's array-API shims for torch, cupy and dask, which import those frameworks
# when installed: about 1.4 s and 180 MB for torch alone, paid by every process that loads a
# scikit-learn model. The shims are not estimators, so we hide them during that one import.
_ARRAY_API_SHIMS = tuple(
    f"sklearn.externals.array_api_compat.{name}" for name in ("torch", "cupy", "dask")
)


def skops_io() -> Any:
    """The ``skops.io`` module, imported without scikit-learn's array-API shims.

    >>> skops_io().get_untrusted_types  # doctest: +SKIP
    <function get_untrusted_types at 0x...>
    """
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    import sklearn.utils

    hidden = [m for m in _ARRAY_API_SHIMS if m not in sys.modules]
    for module in hidden:
        sys.modules[module] = None  # type: ignore[assignment]  # makes the import fail fast
    # skops lists scikit-learn's estimators at import to trust them by default; that walk
    # imports every sklearn module (measured here: 0.2-0.4 s and 12 MiB in every process that
    # loads a model, a large share of a server's time to ready). modelyard never relies on
    # that default: it trusts sklearn's own types by its rule (is_sklearn_type) and passes
    # them explicitly on every load, so skops is imported with an empty listing.
    listing = sklearn.utils.all_estimators
    sklearn.utils.all_estimators = _no_estimators
    try:
        import skops.io
    finally:
        sklearn.utils.all_estimators = listing
        for module in hidden:
            if sys.modules.get(module, 0) is None:
                del sys.modules[module]
    return skops.io


def _no_estimators(*args: Any, **kwargs: Any) -> list[tuple[str, type]]:
    return []


def is_sklearn_type(qualified: str) -> bool:
    """True for a type defined inside scikit-learn, which modelyard trusts in a skops file.

    >>> is_sklearn_type("sklearn.tree._tree.Tree"), is_sklearn_type("mypkg.Model")
    (True, False)
    """
    return qualified.startswith("sklearn.")


def check_trusted_types(untrusted: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """The types to trust when loading a skops file, or :class:`UnsafeModelError` naming the
    ones that are neither scikit-learn's nor in ``allowed``.

    ``untrusted`` is what ``skops.io.get_untrusted_types`` reports for the file.

    >>> check_trusted_types(["sklearn.tree._tree.Tree", "mypkg.Model"], ["mypkg.Model"])
    ['mypkg.Model', 'sklearn.tree._tree.Tree']
    """
    names = sorted(set(untrusted))
    permitted = set(allowed)
    refused = [t for t in names if not is_sklearn_type(t) and t not in permitted]
    if refused:
        raise UnsafeModelError(
            f"The model contains types that skops does not trust by default: {refused}. "
            "Loading them could run code.",
            hint="If you trust them, pass trusted_types=[...] to register() "
            "(CLI: --trust-type NAME).",
        )
    return names
