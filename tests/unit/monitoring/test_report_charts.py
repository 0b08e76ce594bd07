"""Report charts: shared-bin histograms and category shares checked against numpy, SVG hygiene."""

from __future__ import annotations

import re
import sys
from collections import Counter

import matplotlib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from modelyard.monitoring.charts import (
    MISSING_LABEL,
    ChartRenderer,
    Series,
    category_shares,
    numeric_histogram,
)

RNG = np.random.default_rng(11)


# -- numeric histograms ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "current"),
    [
        (RNG.normal(0, 1, 5_000), RNG.normal(0.5, 2, 3_000)),
        (RNG.exponential(1.0, 4_000), RNG.exponential(3.0, 4_000)),
        (np.arange(100, dtype=np.int64), np.arange(50, 150, dtype=np.int64)),
    ],
    ids=["normal-shift-scale", "skewed", "integers"],
)
def test_numeric_histogram_matches_numpy_on_shared_bins(
    reference: np.ndarray, current: np.ndarray
) -> None:
    hist = numeric_histogram(reference, current, bins=30)
    both = np.concatenate([reference, current]).astype(float)
    lo, hi = np.percentile(both, [0.1, 99.9])
    np.testing.assert_allclose(hist.edges, np.linspace(lo, hi, 31), rtol=0, atol=1e-12)
    for values, shares in ((reference, hist.reference), (current, hist.current)):
        expected = np.histogram(values, hist.edges)[0] / values.size
        np.testing.assert_allclose(shares, expected, rtol=0, atol=1e-15)
    outside = np.count_nonzero((both < lo) | (both > hi))
    assert hist.outside == outside
    # whatever lies inside the edges is drawn: shares sum to the inside fraction
    inside_ref = np.count_nonzero((reference >= lo) & (reference <= hi)) / reference.size
    assert hist.reference.sum() == pytest.approx(inside_ref, abs=1e-12)


def test_numeric_histogram_counts_missing_and_ignores_them() -> None:
    ref = np.array([1.0, np.nan, 2.0, np.inf, 3.0])
    cur = np.array([np.nan, np.nan, 2.5, 2.5])
    hist = numeric_histogram(ref, cur, bins=4)
    assert (hist.n_reference, hist.missing_reference) == (3, 2)
    assert (hist.n_current, hist.missing_current) == (2, 2)
    assert np.isfinite(hist.edges).all()


@pytest.mark.parametrize(
    ("reference", "current", "edges"),
    [
        (np.full(10, 4.0), np.full(5, 4.0), (3.5, 4.5)),
        (np.array([]), np.array([]), (0.0, 1.0)),
        (np.array([np.nan]), np.array([]), (0.0, 1.0)),
    ],
    ids=["constant", "empty", "all-missing"],
)
def test_numeric_histogram_degenerate_ranges_still_have_bins(
    reference: np.ndarray, current: np.ndarray, edges: tuple[float, float]
) -> None:
    hist = numeric_histogram(reference, current, bins=8)
    assert (hist.edges[0], hist.edges[-1]) == pytest.approx(edges)
    assert hist.edges.size == 9
    assert np.all(np.diff(hist.edges) > 0)


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.float64, st.integers(0, 60), elements=st.floats(-1e6, 1e6)),
    hnp.arrays(np.float64, st.integers(0, 60), elements=st.floats(-1e6, 1e6)),
)
def test_numeric_histogram_shares_are_proper(ref: np.ndarray, cur: np.ndarray) -> None:
    hist = numeric_histogram(ref, cur, bins=10)
    assert np.all(np.diff(hist.edges) > 0)
    for shares in (hist.reference, hist.current):
        assert np.all(shares >= 0)
        assert shares.sum() <= 1.0 + 1e-12
    assert hist.outside <= ref.size + cur.size


# -- category shares ------------------------------------------------------------------------


def test_category_shares_match_value_counts() -> None:
    cats = np.array(["a", "b", "c", "d"], dtype=object)
    ref = RNG.choice(cats, 1_000, p=[0.4, 0.3, 0.2, 0.1])
    cur = RNG.choice(cats, 800, p=[0.1, 0.2, 0.3, 0.4])
    shares = category_shares(ref, cur)
    ref_counts, cur_counts = Counter(ref.tolist()), Counter(cur.tolist())
    for i, label in enumerate(shares.labels):
        assert shares.reference[i] == pytest.approx(ref_counts[label] / 1_000, abs=1e-15)
        assert shares.current[i] == pytest.approx(cur_counts[label] / 800, abs=1e-15)
    ranks = [max(r, c) for r, c in zip(shares.reference, shares.current, strict=True)]
    assert ranks == sorted(ranks, reverse=True)
    assert (shares.n_other, shares.other_reference, shares.other_current) == (0, 0.0, 0.0)
    assert shares.unseen == ()


@pytest.mark.parametrize(
    ("reference", "current", "labels"),
    [
        (np.array([None, "x", np.nan], dtype=object), np.array(["x"], dtype=object),
         (MISSING_LABEL, "x")),
        (np.array([1, 1, 2]), np.array([2, 3]), ("1", "2", "3")),
        (np.array([True, False, True]), np.array([False]), ("False", "True")),
        (np.array([b"k", b"k"], dtype=object), np.array(["k"], dtype=object), ("k",)),
    ],
    ids=["missing-merged", "integers", "booleans", "bytes-as-text"],
)
def test_category_shares_key_categories_by_text(
    reference: np.ndarray, current: np.ndarray, labels: tuple[str, ...]
) -> None:
    assert set(category_shares(reference, current).labels) == set(labels)


def test_category_shares_keep_top_categories_and_always_show_new_ones() -> None:
    ref = np.repeat(np.array([f"c{i:02d}" for i in range(30)], dtype=object), 100)
    cur = np.concatenate([ref, np.array(["brand_new"] * 3, dtype=object)])
    shares = category_shares(ref, cur, top=20, unseen_shown=5)
    assert len(shares.labels) == 20
    assert "brand_new" in shares.labels
    assert shares.unseen == ("brand_new",)
    assert shares.n_other == 11  # 30 old categories, 19 drawn beside the new one
    assert shares.other_reference == pytest.approx(11 / 30)
    assert shares.reference.sum() + shares.other_reference == pytest.approx(1.0)
    assert shares.current.sum() + shares.other_current == pytest.approx(1.0)
    assert (shares.n_categories_reference, shares.n_categories_current) == (30, 31)


# -- SVG output -----------------------------------------------------------------------------


def _draw_all(renderer: ChartRenderer) -> list[str]:
    ref, cur = RNG.normal(0, 1, 2_000), RNG.normal(0.3, 1, 2_000)
    cats = np.array(["$x$", r"$\frac{", "a & b", "<tag>"], dtype=object)
    ts = 1.7e9 + np.arange(30) * 3600.0
    return [
        renderer.numeric(numeric_histogram(ref, cur), label="num <1>"),
        renderer.categorical(category_shares(RNG.choice(cats, 300), RNG.choice(cats, 300))),
        renderer.time_series(
            [Series("latency.p99_ms", ts[::-1], RNG.random(30)),
             Series("$bad{math", ts, np.full(30, np.nan))],
            targets=[("target <= 50", 50.0), ("no target", float("nan"))],
            ylabel="$ms",
        ),
        renderer.time_series([Series("one point", ts[:1], np.array([0.5]))]),
    ]


@pytest.fixture(scope="module")
def svgs() -> list[str]:
    return _draw_all(ChartRenderer(prefix="r"))


def test_svgs_are_inline_scalable_and_self_contained(svgs: list[str]) -> None:
    for svg in svgs:
        assert svg.startswith("<svg ")
        assert svg.endswith("</svg>")
        opening = svg[: svg.index(">")]
        assert 'viewBox="' in opening
        assert " width=" not in opening
        assert 'class="chart"' in opening
        assert "<metadata" not in svg
        assert "<!DOCTYPE" not in svg
        assert "<script" not in svg
        for target in re.findall(r'(?:href|src)="([^"]*)"', svg):
            assert target.startswith("#"), target


def test_svg_ids_are_unique_across_charts_and_references_resolve(svgs: list[str]) -> None:
    all_ids: list[str] = []
    for svg in svgs:
        ids = re.findall(r'\bid="([^"]+)"', svg)
        refs = re.findall(r'(?:href="#|url\(#)([^")]+)', svg)
        assert refs, "matplotlib's SVG refers to glyphs and clip paths by id"
        assert set(refs) <= set(ids)
        all_ids += ids
    assert len(all_ids) == len(set(all_ids))


def test_aria_label_is_escaped(svgs: list[str]) -> None:
    assert 'aria-label="num &lt;1&gt;"' in svgs[0]


def test_same_data_gives_the_same_svg() -> None:
    hist = numeric_histogram(np.arange(50.0), np.arange(10.0, 60.0))
    first, second = ChartRenderer(prefix="a"), ChartRenderer(prefix="a")
    assert first.numeric(hist) == second.numeric(hist)


def test_rendering_leaves_matplotlib_global_state_alone() -> None:
    backend = matplotlib.get_backend()
    rc = dict(matplotlib.rcParams)
    had_pyplot = "matplotlib.pyplot" in sys.modules
    _draw_all(ChartRenderer())
    assert matplotlib.get_backend() == backend
    assert dict(matplotlib.rcParams) == rc
    assert ("matplotlib.pyplot" in sys.modules) == had_pyplot
