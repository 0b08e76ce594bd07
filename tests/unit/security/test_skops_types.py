"""The skops trust rule the sklearn runtime and the scanner share."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.preprocessing import FunctionTransformer

from modelyard.errors import UnsafeModelError
from modelyard.security.skops_types import check_trusted_types, is_sklearn_type, skops_io


@pytest.mark.parametrize(("name", "trusted"), [
    ("sklearn.tree._tree.Tree", True),
    ("sklearn.ensemble._forest.RandomForestClassifier", True),
    ("sklearnx.Model", False),
    ("numpy.core.multiarray._reconstruct", False),
    ("builtins.eval", False),
], ids=["tree", "forest", "look-alike", "numpy", "builtin"])
def test_only_scikit_learn_types_are_trusted(name: str, trusted: bool) -> None:
    assert is_sklearn_type(name) is trusted


def test_check_returns_sorted_unique_names_or_refuses_the_others() -> None:
    assert check_trusted_types(["sklearn.b", "x.Y", "sklearn.a", "x.Y"], ("x.Y",)) == [
        "sklearn.a", "sklearn.b", "x.Y"]
    assert check_trusted_types([], ()) == []
    with pytest.raises(UnsafeModelError, match="skops does not trust by default") as info:
        check_trusted_types(["sklearn.a", "x.Y", "builtins.eval"], ("x.Y",))
    assert "['builtins.eval']" in str(info.value)
    assert info.value.hint is not None
    assert "--trust-type" in info.value.hint


def test_skops_io_reads_a_real_file_and_leaves_no_hidden_modules(tmp_path: Path) -> None:
    sio = skops_io()
    assert skops_io() is sio
    assert all(sys.modules.get(f"sklearn.externals.array_api_compat.{m}", 0) is not None
               for m in ("torch", "cupy", "dask"))
    forest = RandomForestClassifier(n_estimators=2, random_state=0).fit([[0], [1]], [0, 1])
    sio.dump(forest, tmp_path / "forest.skops")
    assert check_trusted_types(sio.get_untrusted_types(file=tmp_path / "forest.skops"), ()) \
        == sorted(sio.get_untrusted_types(file=tmp_path / "forest.skops"))
    sio.dump(FunctionTransformer(str.upper), tmp_path / "fn.skops")
    untrusted = sio.get_untrusted_types(file=tmp_path / "fn.skops")
    assert untrusted, "skops should not trust a plain function"
    with pytest.raises(UnsafeModelError):
        check_trusted_types(untrusted, ())
