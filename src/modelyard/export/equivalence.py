"""Does an exported model predict what the original predicts? Pure comparisons over numpy.

Both models receive the same prepared input (checked against the signature, as a server
passes it). For a classifier the probabilities are compared and the labels counted; for any
other model the predictions are compared. A value is *within tolerance* when
``|exported - original| <= tolerance * max(1, |original|)``: an absolute bound near zero (for
probabilities) that becomes relative for large outputs, where float32 arithmetic is only
relatively exact.

A label that differs where the original's two most probable classes are within the tolerance
of each other is a *tie*: float rounding may pick either, and it is not counted against the
export. Optimized models (quantized, pruned) are judged by *agreement* instead: the share of
rows with the original's label, or, without labels, within :data:`AGREEMENT_RTOL` of the
original's output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from modelyard.core.tabular import Columns
from modelyard.errors import UnsupportedModelError
from modelyard.runtimes.base import Predictor

__all__ = [
    "AGREEMENT_RTOL",
    "EquivalenceReport",
    "compare",
    "require_agreement",
    "require_equivalent",
]

AGREEMENT_RTOL = 0.01
"""A regression output agrees with the original's when within 1% (or 0.01 below 1)."""


@dataclass(frozen=True, slots=True)
class EquivalenceReport:
    """How closely one model reproduces another on the same rows."""

    rows: int
    output: str
    """What ``max_abs_diff`` compares: ``predict_proba`` for classifiers, else ``predict``."""

    tolerance: float
    max_abs_diff: float
    """Largest absolute difference (NaN when the outputs are not numbers, e.g. text labels)."""

    within_tolerance: float
    """Share of rows whose every value is within ``tolerance`` (see the module doc)."""

    label_agreement: float | None = None
    """Share of rows with the same label (classifiers and models predicting text)."""

    disagreements: int = 0
    ties: int = 0
    """Label disagreements where the original's top two probabilities are within tolerance."""

    close_share: float = 1.0
    """Share of rows within :data:`AGREEMENT_RTOL` of the original (models without labels)."""

    problem: str | None = None
    """Why the outputs cannot be compared at all (another shape, a missing output)."""

    @property
    def passed(self) -> bool:
        """Within tolerance everywhere, and every label disagreement a tie."""
        return (self.problem is None and self.within_tolerance == 1.0
                and self.disagreements == self.ties)

    @property
    def agreement(self) -> float:
        """Label agreement for classifiers, else the share of rows close to the original."""
        if self.problem is not None:
            return 0.0
        return self.label_agreement if self.label_agreement is not None else self.close_share

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["passed"] = self.passed
        out["agreement"] = self.agreement
        return out


def compare(original: Predictor, exported: Predictor, data: Columns | np.ndarray, *,
            tolerance: float) -> EquivalenceReport:
    """Run both predictors on ``data`` and measure how far apart their outputs are.

    >>> class Const:
    ...     def __init__(self, v): self.v = v
    ...     def predict(self, data): return np.full(len(data), self.v)
    >>> x = np.zeros((4, 2))
    >>> compare(Const(1.0), Const(1.00001), x, tolerance=1e-4).passed
    True
    """
    labels_o = np.asarray(original.predict(data))
    labels_e = np.asarray(exported.predict(data))
    rows = int(labels_o.shape[0]) if labels_o.ndim else 1
    has_proba = callable(getattr(original, "predict_proba", None))
    if has_proba and not callable(getattr(exported, "predict_proba", None)):
        return _unusable(rows, "predict_proba", tolerance,
                         "the original has class probabilities and the export has none")
    if labels_o.shape != labels_e.shape:
        return _unusable(rows, "predict", tolerance,
                         f"the original predicts shape {labels_o.shape}, the export "
                         f"{labels_e.shape}")
    if has_proba:
        proba_o = np.asarray(original.predict_proba(data))  # type: ignore[attr-defined]
        proba_e = np.asarray(exported.predict_proba(data))  # type: ignore[attr-defined]
        if proba_o.shape != proba_e.shape:
            return _unusable(rows, "predict_proba", tolerance,
                             f"the original's probabilities have shape {proba_o.shape}, the "
                             f"export's {proba_e.shape}")
        max_diff, within, _ = _closeness(proba_o, proba_e, tolerance)
        same = _same_labels(labels_o, labels_e)
        tie = _near_ties(proba_o, tolerance)
        return EquivalenceReport(
            rows=rows, output="predict_proba", tolerance=tolerance, max_abs_diff=max_diff,
            within_tolerance=within, label_agreement=float(same.mean()) if rows else 1.0,
            disagreements=int((~same).sum()), ties=int((~same & tie).sum()))
    if not (_numeric(labels_o) and _numeric(labels_e)):
        same = _same_labels(labels_o, labels_e)
        share = float(same.mean()) if rows else 1.0
        return EquivalenceReport(
            rows=rows, output="predict", tolerance=tolerance, max_abs_diff=float("nan"),
            within_tolerance=share, label_agreement=share, disagreements=int((~same).sum()))
    max_diff, within, close = _closeness(labels_o, labels_e, tolerance)
    return EquivalenceReport(rows=rows, output="predict", tolerance=tolerance,
                             max_abs_diff=max_diff, within_tolerance=within, close_share=close)


def require_equivalent(report: EquivalenceReport, source: str) -> None:
    """Refuse an export that does not reproduce its source (see :attr:`passed`)."""
    if report.passed:
        return
    raise UnsupportedModelError(
        f"The ONNX export of {source} does not reproduce it on the reference sample "
        f"({report.rows} rows): {describe(report)}. Nothing was registered.",
        hint="If the difference is acceptable, raise --tolerance; otherwise the converter "
        "does not support this model faithfully (register an ONNX file you checked).")


def require_agreement(report: EquivalenceReport, source: str, minimum: float) -> None:
    """Refuse an optimized model that changes more predictions than ``minimum`` allows."""
    if report.problem is None and report.agreement >= minimum:
        return
    detail = report.problem or f"it agrees with it on {report.agreement:.2%} of the rows"
    raise UnsupportedModelError(
        f"The optimized ONNX model no longer predicts like {source} on the reference sample "
        f"({report.rows} rows): {detail}, below the minimum of {minimum:.2%}. Nothing was "
        "registered.",
        hint="Try --quantize dynamic, a smaller --prune ratio, or a lower --min-agreement.")


def describe(report: EquivalenceReport) -> str:
    """One sentence on how ``report`` falls short (or holds)."""
    if report.problem is not None:
        return report.problem
    parts = []
    if not np.isnan(report.max_abs_diff):
        parts.append(
            f"max absolute difference of {report.output} {report.max_abs_diff:.3g} "
            f"(tolerance {report.tolerance:g}; {report.within_tolerance:.2%} of rows within)")
    if report.label_agreement is not None:
        unexplained = report.disagreements - report.ties
        labels = f"labels agree on {report.label_agreement:.2%} of rows"
        if unexplained:
            labels += f" ({unexplained} disagreement(s) that are not ties)"
        elif report.ties:
            labels += f" (the {report.ties} that differ are near-ties)"
        parts.append(labels)
    return "; ".join(parts)


def _unusable(rows: int, output: str, tolerance: float, problem: str) -> EquivalenceReport:
    return EquivalenceReport(rows=rows, output=output, tolerance=tolerance,
                             max_abs_diff=float("inf"), within_tolerance=0.0, close_share=0.0,
                             problem=problem)


def _numeric(values: np.ndarray) -> bool:
    return values.dtype.kind in "biuf"


def _closeness(original: np.ndarray, exported: np.ndarray,
               tolerance: float) -> tuple[float, float, float]:
    """Max absolute difference, share of rows within tolerance, share within 1%."""
    o = original.astype(np.float64, copy=False)
    e = exported.astype(np.float64, copy=False)
    if o.size == 0:
        return 0.0, 1.0, 1.0
    diff = np.abs(e - o)
    diff = np.where(np.isnan(o) & np.isnan(e), 0.0, diff).reshape(len(o), -1)
    scale = np.maximum(1.0, np.abs(np.nan_to_num(o))).reshape(diff.shape)
    # A NaN on one side only compares False: outside every tolerance.
    within = (diff <= tolerance * scale).all(axis=1)
    close = (diff <= AGREEMENT_RTOL * scale).all(axis=1)
    max_diff = float("inf") if np.isnan(diff).any() else float(diff.max())
    return max_diff, float(within.mean()), float(close.mean())


def _same_labels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if _numeric(a) and _numeric(b):
        return np.asarray(np.asarray(a == b).reshape(len(a), -1).all(axis=1))
    as_text = np.vectorize(_text, otypes=[object])
    return np.asarray(np.asarray(as_text(a) == as_text(b)).reshape(len(a), -1).all(axis=1))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _near_ties(proba: np.ndarray, tolerance: float) -> np.ndarray:
    """Rows whose two highest probabilities are within ``2 * tolerance`` of each other."""
    if proba.ndim != 2 or proba.shape[1] < 2:
        return np.zeros(proba.shape[0] if proba.ndim else 1, dtype=bool)
    top = np.sort(proba.astype(np.float64), axis=1)[:, -2:]
    return np.asarray((top[:, 1] - top[:, 0]) <= 2 * tolerance)
