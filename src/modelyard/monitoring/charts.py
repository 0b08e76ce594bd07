"""Charts for monitoring reports, drawn as inline SVG with matplotlib.

No pyplot and no ``matplotlib.use``: each :class:`ChartRenderer` owns one
``matplotlib.figure.Figure`` attached to an SVG canvas and redraws it for every chart, so a
report leaves matplotlib's global state (backend, rcParams, open figures) exactly as it found
it. Styling is set on the artists themselves for the same reason. Every SVG gets its element
ids prefixed, so that many charts can live inline in one HTML page without their ids (glyphs,
clip paths) colliding.
"""

from __future__ import annotations

import io
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.core.tabular import is_missing

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "CURRENT_COLOR",
    "REFERENCE_COLOR",
    "CategoryShares",
    "ChartRenderer",
    "NumericHistogram",
    "Series",
    "category_shares",
    "numeric_histogram",
]

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
REFERENCE_COLOR = "#0072B2"
CURRENT_COLOR = "#E69F00"
_SERIES_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00")
_TARGET_COLOR = "#B42318"
_TEXT = "#24292f"
_MUTED = "#57606a"
_GRID = "#d0d7de"
_FONT = 10.5
_DPI = 72.0  # SVG user units are points: 1 inch = 72 units, so sizes below read as pixels/72

MISSING_LABEL = "(missing)"


@dataclass(frozen=True, slots=True)
class NumericHistogram:
    """Reference and current values counted on the same bins, as shares of present values.

    The bins span the 0.1st-99.9th percentiles of both samples together, so that a few
    outliers do not squeeze the distribution into one bar; values outside are left out of the
    bars (which then sum to a little less than 1) and counted in ``outside``.
    """

    edges: np.ndarray
    reference: np.ndarray
    current: np.ndarray
    n_reference: int
    n_current: int
    missing_reference: int
    missing_current: int
    outside: int


@dataclass(frozen=True, slots=True)
class CategoryShares:
    """Shares of the most frequent categories of both samples, and of the ``n_other`` rest.

    ``unseen`` lists the categories of the current sample that the reference never had
    (missing values aside), most frequent first.
    """

    labels: tuple[str, ...]
    reference: np.ndarray
    current: np.ndarray
    other_reference: float
    other_current: float
    n_reference: int
    n_current: int
    n_categories_reference: int
    n_categories_current: int
    n_other: int
    unseen: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a time-series chart: unix timestamps (seconds) and values."""

    label: str
    timestamps: np.ndarray
    values: np.ndarray


def as_float(values: np.ndarray) -> np.ndarray | None:
    """``values`` as float64 (None and NaN as NaN), or None when they are not numbers."""
    try:
        return np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return None


def numeric_histogram(
    reference: np.ndarray, current: np.ndarray, *, bins: int = 40
) -> NumericHistogram:
    """Histogram both samples on shared equal-width bins (see :class:`NumericHistogram`).

    Example:
        >>> h = numeric_histogram(np.arange(100.0), np.arange(50.0, 150.0), bins=10)
        >>> h.edges.size, h.n_reference, h.n_current
        (11, 100, 100)
    """
    ref = np.asarray(reference, dtype=np.float64).ravel()
    cur = np.asarray(current, dtype=np.float64).ravel()
    ref_ok, cur_ok = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    both = np.concatenate([ref_ok, cur_ok])
    if both.size == 0:
        edges = np.linspace(0.0, 1.0, bins + 1)
    else:
        lo, hi = np.percentile(both, [0.1, 99.9])
        if not hi > lo:  # a constant column, or one dominated by a single value
            lo, hi = float(both.min()), float(both.max())
        edges = np.linspace(lo, hi, bins + 1)
        # A constant column, or a range too narrow for the floats to tell its bins apart
        # (say 0 and 5e-324): one unit around it instead.
        if not np.all(np.diff(edges) > 0):
            edges = np.linspace(lo - 0.5, hi + 0.5, bins + 1)
    return NumericHistogram(
        edges=edges,
        reference=_shares(ref_ok, edges),
        current=_shares(cur_ok, edges),
        n_reference=int(ref_ok.size),
        n_current=int(cur_ok.size),
        missing_reference=int(ref.size - ref_ok.size),
        missing_current=int(cur.size - cur_ok.size),
        outside=int(np.count_nonzero((both < edges[0]) | (both > edges[-1]))),
    )


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # np.histogram ignores values outside the edges; the share is of all present values
    counts, _ = np.histogram(values, edges)
    return counts / values.size if values.size else counts.astype(np.float64)


def _category_counts(values: np.ndarray) -> Counter[str]:
    arr = np.asarray(values).ravel()
    counts: Counter[str] = Counter()
    if arr.dtype.kind in "biuUS":  # no missing values possible: count natively, fast
        uniq, n = np.unique(arr, return_counts=True)
        for value, count in zip(uniq.tolist(), n.tolist(), strict=True):
            counts[_label(value)] += count
        return counts
    # Counter hashes the objects themselves (fast), then keys are merged by their label
    for value, count in Counter(arr.tolist()).items():
        counts[MISSING_LABEL if is_missing(value) else _label(value)] += count
    return counts


def _label(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def category_shares(
    reference: np.ndarray, current: np.ndarray, *, top: int = 20, unseen_shown: int = 5
) -> CategoryShares:
    """Shares of the ``top`` most frequent categories of both samples; the rest summed apart.

    Categories are ranked by the larger of their two shares. Up to ``unseen_shown`` categories
    that only the current sample has are always among those drawn, however rare, since a new
    category is news. Missing values count as the category ``(missing)``; categories are keyed
    by ``str(value)`` as in reference profiles.

    Example:
        >>> s = category_shares(np.array(["a", "a", "b"]), np.array(["b", "c"]))
        >>> s.labels, s.unseen
        (('a', 'b', 'c'), ('c',))
    """
    ref_counts, cur_counts = _category_counts(reference), _category_counts(current)
    n_ref, n_cur = sum(ref_counts.values()), sum(cur_counts.values())

    def share(counts: Counter[str], n: int, key: str) -> float:
        return counts.get(key, 0) / n if n else 0.0

    def rank(k: str) -> tuple[float, str]:
        return (-max(share(ref_counts, n_ref, k), share(cur_counts, n_cur, k)), k)

    unseen = sorted((k for k in cur_counts if k not in ref_counts and k != MISSING_LABEL),
                    key=lambda k: (-cur_counts[k], k))
    forced = unseen[: min(unseen_shown, top)]
    rest = sorted((set(ref_counts) | set(cur_counts)) - set(forced), key=rank)
    labels = sorted([*rest[: top - len(forced)], *forced], key=rank)
    ref = np.array([share(ref_counts, n_ref, k) for k in labels], dtype=np.float64)
    cur = np.array([share(cur_counts, n_cur, k) for k in labels], dtype=np.float64)
    return CategoryShares(
        labels=tuple(labels),
        reference=ref,
        current=cur,
        other_reference=max(0.0, 1.0 - float(ref.sum())) if n_ref else 0.0,
        other_current=max(0.0, 1.0 - float(cur.sum())) if n_cur else 0.0,
        n_reference=n_ref,
        n_current=n_cur,
        n_categories_reference=len(set(ref_counts) - {MISSING_LABEL}),
        n_categories_current=len(set(cur_counts) - {MISSING_LABEL}),
        n_other=len(rest) - (top - len(forced)) if len(rest) > top - len(forced) else 0,
        unseen=tuple(unseen),
    )


_ID_DEF = re.compile(r'\bid="([^"]+)"')
_ID_USE = re.compile(r'(\bid="|href="#|url\(#)([^")]+)')
_DECLARATION = re.compile(r"^.*?(?=<svg\b)", re.DOTALL)
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.DOTALL)
_COMMENT = re.compile(r"\s*<!--.*?-->", re.DOTALL)
_STYLE = re.compile(r"\s*<defs>\s*<style[^>]*>[^<]*</style>\s*</defs>")
_INDENT = re.compile(r"\n[ \t]+")
_SIZE = re.compile(r'<svg\b([^>]*?)\swidth="[^"]*" height="[^"]*"')


class ChartRenderer:
    """Draws report charts as SVG strings, redrawing one matplotlib Figure each time.

    Each chart's element ids are ``{prefix}{n}-{k}``, n counting the charts this renderer drew
    and k the ids within the chart, so one renderer per HTML page keeps all ids unique, and
    the same data gives the same SVG.

    Example:
        >>> r = ChartRenderer()
        >>> svg = r.numeric(numeric_histogram(np.arange(10.0), np.arange(5.0, 15.0)))
        >>> svg.startswith("<svg")
        True
    """

    def __init__(self, *, prefix: str = "chart") -> None:
        from matplotlib.backends.backend_svg import FigureCanvasSVG
        from matplotlib.figure import Figure

        self._prefix = prefix
        self._count = 0
        self._size = (600.0, 260.0)
        self._legend_rows = 0
        # Margins are measured by _fit_margins, not by a layout engine: constrained layout
        # draws every figure twice more and would double the time a report takes.
        self._figure: Figure = Figure(figsize=(8.0, 3.0), dpi=_DPI)
        FigureCanvasSVG(self._figure)

    # -- chart kinds --------------------------------------------------------------------------

    def numeric(self, hist: NumericHistogram, *, label: str = "") -> str:
        """Overlaid step-filled histograms of reference and current shares on shared bins."""
        ax = self._axes(width=600.0, height=260.0)
        for shares, color, name, n in (
            (hist.reference, REFERENCE_COLOR, "reference", hist.n_reference),
            (hist.current, CURRENT_COLOR, "current", hist.n_current),
        ):
            ax.stairs(shares, hist.edges, fill=True, color=color, alpha=0.35, linewidth=0)
            ax.stairs(shares, hist.edges, color=color, linewidth=1.4,
                      label=f"{name} (n={n:,})")
        ax.set_xlim(float(hist.edges[0]), float(hist.edges[-1]))
        ax.set_ylim(bottom=0.0)
        ax.set_ylabel("share of rows", fontsize=_FONT, color=_MUTED)
        ax.yaxis.set_major_formatter(_percent_formatter())
        ax.grid(axis="y", color=_GRID, linewidth=0.6)
        self._legend(ax)
        return self._svg(label)

    def categorical(self, shares: CategoryShares, *, label: str = "") -> str:
        """Side-by-side horizontal bars of each category's share, reference then current."""
        n = len(shares.labels)
        ax = self._axes(width=600.0, height=max(150.0, 64.0 + 21.0 * n))
        pos = np.arange(n, dtype=np.float64)
        bar = 0.38
        ax.barh(pos - bar / 2, shares.reference, height=bar, color=REFERENCE_COLOR,
                label=f"reference (n={shares.n_reference:,})")
        ax.barh(pos + bar / 2, shares.current, height=bar, color=CURRENT_COLOR,
                label=f"current (n={shares.n_current:,})")
        # parse_math=False: a '$' in a category name is text, never mathtext
        ax.set_yticks(pos, labels=[_shorten(s) for s in shares.labels], parse_math=False)
        ax.set_ylim(n - 0.5, -0.5)  # most frequent on top
        ax.set_xlim(left=0.0)
        ax.set_xlabel("share of rows", fontsize=_FONT, color=_MUTED)
        ax.xaxis.set_major_formatter(_percent_formatter())
        ax.grid(axis="x", color=_GRID, linewidth=0.6)
        self._legend(ax)
        return self._svg(label)

    def time_series(
        self,
        series: Sequence[Series],
        *,
        targets: Sequence[tuple[str, float]] = (),
        ylabel: str = "",
        label: str = "",
    ) -> str:
        """Lines over time (UTC); each target is a dashed horizontal line with its label."""
        ax = self._axes(width=480.0, height=250.0, dates=True)
        spans: list[float] = []
        for i, s in enumerate(series):
            ts = np.asarray(s.timestamps, dtype=np.float64)
            ys = np.asarray(s.values, dtype=np.float64)
            order = np.argsort(ts, kind="stable")
            when = (ts[order] * 1000.0).astype("datetime64[ms]")
            color = _SERIES_COLORS[i % len(_SERIES_COLORS)]
            marker = "o" if ts.size <= 60 else None
            ax.plot(when, ys[order], color=color, linewidth=1.6, marker=marker,
                    markersize=3.0, label=_shorten(s.label))
            spans += [float(ts.min()), float(ts.max())] if ts.size else []
        if spans and max(spans) - min(spans) < 60.0:
            # one moment only: give the date axis an hour around it to place ticks on
            mid = (max(spans) + min(spans)) / 2
            lo, hi = np.array([mid - 1800.0, mid + 1800.0]) * 1000.0
            ax.set_xlim(lo.astype("datetime64[ms]"), hi.astype("datetime64[ms]"))
        for name, value in targets:
            if math.isfinite(value):
                ax.axhline(value, color=_TARGET_COLOR, linewidth=1.2, linestyle=(0, (5, 3)),
                           label=_shorten(name))
        if ylabel:
            ax.set_ylabel(_shorten(ylabel), fontsize=_FONT, color=_MUTED, parse_math=False)
        ax.grid(color=_GRID, linewidth=0.6)
        self._legend(ax)
        return self._svg(label)

    # -- plumbing ----------------------------------------------------------------------------

    def _axes(self, *, width: float, height: float, dates: bool = False) -> Axes:
        fig = self._figure
        fig.clear()
        fig.set_size_inches(width / _DPI, height / _DPI)
        self._size = (width, height)
        self._legend_rows = 0
        ax = fig.add_subplot()
        ax.set_facecolor("white")
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        for side in ("left", "bottom"):
            ax.spines[side].set_color(_GRID)
        ax.tick_params(labelsize=_FONT, colors=_MUTED, length=3)
        ax.set_axisbelow(True)
        if dates:
            from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

            locator = AutoDateLocator(minticks=3, maxticks=7)  # type: ignore[no-untyped-call]
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(
                ConciseDateFormatter(locator)  # type: ignore[no-untyped-call]
            )
        return ax

    def _legend(self, ax: Axes) -> None:
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            ncols = min(len(handles), 3)
            self._legend_rows = math.ceil(len(handles) / ncols)
            legend = self._figure.legend(
                handles, labels, loc="upper left", bbox_to_anchor=(0.0, 1.0), ncols=ncols,
                frameon=False, fontsize=_FONT, labelcolor=_TEXT, handlelength=1.6,
                columnspacing=1.4, borderaxespad=0.3,
            )
            for text in legend.get_texts():
                text.set_parse_math(False)  # a '$' in a metric name is text, never mathtext

    def _fit_margins(self) -> None:
        """Place the axes so that tick labels, axis labels and the legend just fit."""
        from matplotlib.font_manager import FontProperties
        from matplotlib.textpath import text_to_path

        width, height = self._size
        ax = self._figure.axes[0]
        font = FontProperties(size=_FONT)

        def text_width(text: str) -> float:
            if not text:
                return 0.0
            w, _, _ = text_to_path.get_text_width_height_descent(text, font, ismath=False)
            return float(w)

        line = _FONT * 1.25
        y_labels = [t.get_text() for t in ax.get_yticklabels()]
        x_labels = [t.get_text() for t in ax.get_xticklabels()]
        left = 10.0 + max((text_width(t) for t in y_labels), default=0.0)
        left += line + 4.0 if ax.get_ylabel() else 0.0
        bottom = 8.0 + line
        bottom += line + 2.0 if ax.get_xlabel() else 0.0
        bottom += line if ax.xaxis.get_offset_text().get_text() or self._has_date_offset(ax) \
            else 0.0
        top = 8.0 + self._legend_rows * (line + 4.0)
        right = max(12.0, text_width(x_labels[-1]) / 2 + 4.0) if x_labels else 12.0
        self._figure.subplots_adjust(
            left=min(left / width, 0.6), right=1.0 - right / width,
            top=1.0 - top / height, bottom=min(bottom / height, 0.5),
        )

    @staticmethod
    def _has_date_offset(ax: Axes) -> bool:
        from matplotlib.dates import ConciseDateFormatter

        return isinstance(ax.xaxis.get_major_formatter(), ConciseDateFormatter)

    def _svg(self, label: str) -> str:
        self._fit_margins()
        buf = io.StringIO()
        self._figure.savefig(buf, format="svg", dpi=_DPI, facecolor="white",
                             metadata={"Date": None})
        self._count += 1
        prefix = f"{self._prefix}{self._count}-"
        svg = _DECLARATION.sub("", buf.getvalue(), count=1)
        svg = _METADATA.sub("", svg, count=1)
        svg = _COMMENT.sub("", svg)  # matplotlib repeats each text in a comment: dead weight
        # its <style> sets stroke joins for every element of the page: the report's CSS sets
        # them for the charts instead
        svg = _STYLE.sub("", svg, count=1)
        svg = _INDENT.sub("\n", svg)
        # matplotlib salts clip-path and marker ids with a random uuid: number the ids in
        # order of appearance instead, so that a report is reproducible and ids are unique
        names: dict[str, str] = {}
        for name in _ID_DEF.findall(svg):
            names.setdefault(name, f"{prefix}{len(names)}")
        svg = _ID_USE.sub(lambda m: m.group(1) + names.get(m.group(2), prefix + m.group(2)), svg)
        # drop the fixed size (the viewBox keeps the aspect ratio) so CSS can scale the chart
        attrs = f' class="chart" role="img" aria-label="{_attr(label)}"'
        return _SIZE.sub(lambda m: f"<svg{m.group(1)}{attrs}", svg, count=1).strip()


def _percent_formatter() -> Any:
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0, decimals=None)


def _shorten(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _attr(text: str) -> str:
    import html

    return html.escape(text, quote=True)
