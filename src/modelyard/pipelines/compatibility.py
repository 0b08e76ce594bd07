"""The signature gate: can the candidate take the traffic the champion takes?

``compatible``
    Every input the champion requires exists in the candidate and accepts what the champion
    accepted: the same rules :meth:`Schema.validate <modelyard.core.signature.Schema.validate>`
    applies on predict (int to float is fine, float to int or text to numbers is not, and a
    column where the champion allowed missing values must allow them in the candidate too).
    New candidate inputs are allowed, as long as the holdout has them.
``identical``
    The same inputs, in the same order, with the same dtypes and nullability (tensors: the
    same names, dtypes and shapes).
``off``
    No check.

In every mode but ``off``, the candidate's input columns must all be in the holdout.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any, Literal

import numpy as np

from modelyard.core.signature import ColumnSpec, Schema, Signature, TensorSpec
from modelyard.errors import SignatureError
from modelyard.pipelines.report import GateCheck

__all__ = ["SignatureMode", "signature_check"]

SignatureMode = Literal["compatible", "identical", "off"]

_SHOWN = 5
"""Problems spelled out in a check's detail; the rest are counted."""


def signature_check(mode: SignatureMode, candidate: Signature | None,
                    champion: Signature | None, *, holdout_columns: Collection[str],
                    has_champion: bool) -> GateCheck | None:
    """The ``signature`` check of ``candidate`` against ``champion`` (None when ``mode`` is
    ``off``). ``has_champion`` is False when there is no champion at all, as opposed to a
    champion registered without a signature.

    >>> sig = Signature.infer({"a": [1.0], "b": [2]})
    >>> signature_check("compatible", sig, None, holdout_columns=["a", "b"],
    ...                 has_champion=False).detail
    'no champion'
    """
    if mode == "off":
        return None
    problems = _missing_in_holdout(candidate, holdout_columns)
    if not has_champion:
        note = "no champion"
    elif champion is None:
        note = "not compared: the champion has no signature"
    elif candidate is None:
        note = ""
        problems.append("the candidate has no signature (register it with data=... so that "
                        "one is inferred)")
    elif candidate.inputs.kind != champion.inputs.kind:
        note = ""
        problems.append(f"the champion takes {champion.inputs.kind}, the candidate "
                        f"{candidate.inputs.kind}")
    elif mode == "identical":
        note = "identical inputs"
        problems.extend(_differences(candidate.inputs, champion.inputs))
    else:
        note = "compatible inputs"
        problems.extend(_incompatibilities(candidate.inputs, champion.inputs))
    if problems:
        shown = "; ".join(problems[:_SHOWN])
        more = f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        return GateCheck("signature", False, f"{mode}: {shown}{more}")
    return GateCheck("signature", True, note)


def _missing_in_holdout(candidate: Signature | None, columns: Collection[str]) -> list[str]:
    if candidate is None or candidate.inputs.kind != "columns":
        return []
    present = set(columns)
    missing = [name for name in candidate.inputs.names if name not in present]
    if not missing:
        return []
    return [f"the holdout lacks input(s) {missing} that the candidate requires"]


def _incompatibilities(candidate: Schema, champion: Schema) -> list[str]:
    if candidate.kind == "columns":
        return _missing_or_refused(candidate.columns, champion.columns, "input",
                                   _column_accepts)
    return _missing_or_refused(candidate.tensors, champion.tensors, "tensor", _tensor_accepts)


def _missing_or_refused(mine: Sequence[Any], theirs: Sequence[Any], what: str,
                        accepts: Callable[[Any, Any], str | None]) -> list[str]:
    """For each of the champion's inputs: missing in the candidate, or what the candidate's
    input of that name refuses of it."""
    have = {spec.name: spec for spec in mine}
    out = []
    for spec in theirs:
        match = have.get(spec.name)
        problem = (f"{what} {spec.name!r} of the champion is missing in the candidate"
                   if match is None else accepts(match, spec))
        if problem is not None:
            out.append(problem)
    return out


def _column_accepts(candidate: ColumnSpec, champion: ColumnSpec) -> str | None:
    """Why the candidate's column refuses values the champion's accepted, or None.

    Values of the champion's dtype (text, a zero, and a missing value where the champion
    allows one) are put through the candidate's own signature check: the rule predict
    applies, not a second copy of it."""
    if candidate.dtype == champion.dtype and (candidate.nullable or not champion.nullable):
        return None
    try:
        sample = _sample(champion.dtype, champion.nullable)
    except TypeError:  # a dtype numpy does not know: only the same name is compatible
        if candidate.dtype == champion.dtype:
            return None
        return (f"column {champion.name!r} is {champion.dtype} in the champion and "
                f"{candidate.dtype} in the candidate")
    try:
        Schema("columns", columns=(candidate,)).validate({candidate.name: sample})
    except SignatureError as exc:
        return f"column {champion.name!r} ({champion.dtype} in the champion): {exc.message}"
    return None


def _sample(dtype: str, nullable: bool) -> np.ndarray:
    if dtype == "string":
        return np.array(["a", None] if nullable else ["a"], dtype=object)
    kind = np.dtype(dtype)
    if nullable and kind.kind == "f":
        return np.array([0, np.nan], dtype=kind)
    return np.zeros(1, dtype=kind)


def _tensor_accepts(candidate: TensorSpec, champion: TensorSpec) -> str | None:
    if len(candidate.shape) != len(champion.shape) or any(
        mine not in (-1, theirs) for mine, theirs in zip(candidate.shape, champion.shape,
                                                         strict=True)
    ):
        return (f"tensor {champion.name!r} has shape {list(champion.shape)} in the champion "
                f"and {list(candidate.shape)} in the candidate")
    if candidate.dtype == champion.dtype:
        return None
    try:
        sample = np.zeros(tuple(1 if d == -1 else d for d in champion.shape),
                          dtype=np.dtype(champion.dtype))
    except TypeError:
        return (f"tensor {champion.name!r} is {champion.dtype} in the champion and "
                f"{candidate.dtype} in the candidate")
    try:
        Schema("tensors", tensors=(candidate,)).validate(sample)
    except SignatureError as exc:
        return f"tensor {champion.name!r} ({champion.dtype} in the champion): {exc.message}"
    return None


def _differences(candidate: Schema, champion: Schema) -> list[str]:
    mine: list[tuple[str, str, object]]
    theirs: list[tuple[str, str, object]]
    if candidate.kind == "columns":
        mine = [(c.name, c.dtype, c.nullable) for c in candidate.columns]
        theirs = [(c.name, c.dtype, c.nullable) for c in champion.columns]
    else:
        mine = [(t.name, t.dtype, t.shape) for t in candidate.tensors]
        theirs = [(t.name, t.dtype, t.shape) for t in champion.tensors]
    if mine == theirs:
        return []
    out = []
    names_mine = [m[0] for m in mine]
    names_theirs = [t[0] for t in theirs]
    only_champion = [n for n in names_theirs if n not in set(names_mine)]
    only_candidate = [n for n in names_mine if n not in set(names_theirs)]
    if only_champion:
        out.append(f"only the champion has {only_champion}")
    if only_candidate:
        out.append(f"only the candidate has {only_candidate}")
    by_name = {m[0]: m for m in mine}
    for spec in theirs:
        other = by_name.get(spec[0])
        if other is not None and other != spec:
            out.append(f"{spec[0]!r} is {_describe(spec)} in the champion and "
                       f"{_describe(other)} in the candidate")
    if not out:
        out.append(f"the inputs are in another order: {names_mine} instead of {names_theirs}")
    return out


def _describe(spec: tuple[str, str, object]) -> str:
    _, dtype, extra = spec
    if isinstance(extra, bool):
        return f"{dtype}{' (nullable)' if extra else ''}"
    return f"{dtype} {list(extra) if isinstance(extra, tuple) else extra}"
