"""The skops trust rule the sklearn runtime and the scanner share."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.preprocessing import FunctionTransformer
from tests.fresh_process import run_fresh

from modelyard.errors import UnsafeModelError
from modelyard.security.skops_types import check_trusted_types, is_trusted_type, skops_io


@pytest.mark.parametrize(("name", "trusted"), [
    ("sklearn.tree._tree.Tree", True),
    ("sklearn.ensemble._forest.RandomForestClassifier", True),
    ("sklearnx.Model", False),
    ("numpy.core.multiarray._reconstruct", False),
    ("builtins.eval", False),
    ("numpy.log1p", True),
    ("scipy.special._ufuncs.expit", True),
    ("scipy.special.expit", True),
    ("numpy.load", False),
    ("numpy.lib.npyio.load", False),
    ("numpy.nolog1p", False),
    ("scipy.special.logsumexp", False),
    ("numpyx.log1p", False),
    ("not.imported.module.log1p", False),
    ("log1p", False),
], ids=["tree", "forest", "look-alike", "numpy-internal", "builtin", "numpy-ufunc",
        "scipy-ufunc-private-path", "scipy-ufunc", "numpy-function", "numpy-module-function",
        "missing-ufunc", "scipy-function", "numpy-look-alike", "unimported", "bare"])
def test_scikit_learn_types_and_public_ufuncs_are_trusted(name: str, trusted: bool) -> None:
    import scipy.special  # noqa: F401  (imported in any process that loads a model)

    assert is_trusted_type(name) is trusted


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


def test_a_model_holding_ufuncs_loads_as_skops_would_trust_it(tmp_path: Path) -> None:
    # skops trusts numpy's and scipy.special's ufuncs by default; modelyard imports skops
    # without that listing and trusts them by its rule, so such models still load untold.
    import numpy as np
    from scipy.special import expit

    sio = skops_io()
    for fn in (np.log1p, expit):
        path = tmp_path / f"{fn.__name__}.skops"
        sio.dump(FunctionTransformer(fn), path)
        trusted = check_trusted_types(sio.get_untrusted_types(file=path), ())
        loaded = sio.load(path, trusted=trusted)
        assert loaded.func is fn


def test_a_fresh_process_imports_skops_without_walking_every_sklearn_module(
        tmp_path: Path) -> None:
    # skops' default estimator listing imports all of scikit-learn; modelyard skips it (it
    # trusts sklearn's types by its own rule), and a registered-style file still round-trips.
    script = f"""
import sys
from modelyard.security.skops_types import check_trusted_types, skops_io
sio = skops_io()
assert "sklearn.gaussian_process" not in sys.modules, "the estimator walk ran"
assert "sklearn.ensemble" not in sys.modules, "the gradient-boosting internals were imported"
import skops.io._utils
assert skops.io._utils.get_public_type_names.__name__ == "get_public_type_names"  # restored
assert not any(type(f).__name__ == "_EmptyUfuncListing" for f in sys.meta_path)
import sklearn.utils
assert sklearn.utils.all_estimators.__name__ == "all_estimators"  # restored
from sklearn.linear_model import LogisticRegression
model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
sio.dump(model, {str(tmp_path / 'lr.skops')!r})
path = {str(tmp_path / 'lr.skops')!r}
trusted = check_trusted_types(sio.get_untrusted_types(file=path), ())
assert sio.load(path, trusted=trusted).predict([[1.0]])[0] == 1
from sklearn.ensemble import HistGradientBoostingClassifier
hgb = HistGradientBoostingClassifier(max_iter=3).fit([[0.0], [1.0]] * 10, [0, 1] * 10)
sio.dump(hgb, path)
trusted = check_trusted_types(sio.get_untrusted_types(file=path), ())
assert sio.load(path, trusted=trusted).predict([[1.0]])[0] == hgb.predict([[1.0]])[0]
print("ok")
"""
    run_fresh(script)


def test_scikit_learn_is_imported_without_pandas_until_a_dataframe_needs_it(
        tmp_path: Path) -> None:
    # sklearn.utils.fixes imports pandas for no use of its own (63 MiB here); modelyard refuses
    # that one import. A model fitted on arrays then loads and predicts without pandas, and
    # one fitted on a DataFrame, or anything asking the stand-in, still gets the real pandas.
    script = f"""
import sys
from modelyard.security.skops_types import check_trusted_types, skops_io
sio = skops_io()
assert "pandas" not in sys.modules, "scikit-learn's import brought pandas"
assert not any(type(f).__name__ == "_RefusePandasToFixes" for f in sys.meta_path)
from sklearn.linear_model import LogisticRegression
import numpy as np
path = {str(tmp_path / 'lr.skops')!r}
sio.dump(LogisticRegression().fit(np.array([[0.0], [1.0]]), [0, 1]), path)
model = sio.load(path, trusted=check_trusted_types(sio.get_untrusted_types(file=path), ()))
assert model.predict(np.array([[1.0]]))[0] == 1
assert "pandas" not in sys.modules, "predicting on an array imported pandas"
import sklearn.utils.fixes as fixes
assert fixes.pd.DataFrame is sys.modules["pandas"].DataFrame  # the stand-in imports it
import pandas as pd
from sklearn.preprocessing import StandardScaler
frame = pd.DataFrame({{"a": [1.0, 3.0]}})
out = StandardScaler().set_output(transform="pandas").fit_transform(frame)
assert list(out.columns) == ["a"] and out["a"].tolist() == [-1.0, 1.0]
print("ok")
"""
    run_fresh(script)


def test_only_scikit_learns_fixes_module_is_refused_pandas() -> None:
    from modelyard.security.skops_types import _RefusePandasToFixes

    refuse = _RefusePandasToFixes()
    assert refuse.find_spec("pandas", None) is None  # asked from here: pandas is found
    assert refuse.find_spec("numpy", None) is None
    fixes_globals = {"__name__": "sklearn.utils.fixes", "refuse": refuse}
    with pytest.raises(ModuleNotFoundError, match="pandas"):
        exec("refuse.find_spec('pandas', None)", fixes_globals)
