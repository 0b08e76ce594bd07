"""User-written checks: ``module:function`` callables that judge a candidate in their own way.

A check takes one argument, a :class:`CheckContext`, and returns ``True``/``False`` or a
``(passed, detail)`` pair::

    # my_checks.py, next to gates.yaml
    import numpy as np

    def no_negative_prices(ctx):
        predictions = ctx.candidate_model.predict(ctx.features())
        worst = float(np.min(predictions))
        return worst >= 0, f"lowest prediction {worst:.2f}"

A check that raises fails with the exception's text; it never stops the other gates. Modules
are imported with the current directory first on ``sys.path``, as pytest does, so a file next
to where ``modelyard validate`` runs is found without installing it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.errors import ConfigurationError
from modelyard.pipelines.evaluation import features_of
from modelyard.pipelines.report import GateCheck

if TYPE_CHECKING:
    import pandas as pd

    from modelyard.core.entities import ModelVersion
    from modelyard.runtimes.model import Model

__all__ = ["CheckContext", "UserCheck", "load_check", "run_check", "split_spec"]

UserCheck = Callable[["CheckContext"], Any]
"""A user check: called with the context, returns a bool or a (bool, detail) pair."""


@dataclass(frozen=True)
class CheckContext:
    """What a user check can look at. ``data`` is the whole holdout, target column included;
    the metrics are those the built-in gates computed (empty for a model that could not be
    evaluated, or when there is no champion)."""

    candidate: ModelVersion
    candidate_model: Model
    champion: ModelVersion | None
    champion_model: Model | None
    data: pd.DataFrame
    target: str
    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float]

    def features(self, model: Model | None = None) -> pd.DataFrame:
        """The holdout's columns that ``model`` (default: the candidate) takes, ready for its
        ``predict``: the label and any other column the model does not know are left out,
        since predict refuses unknown columns.

        >>> ctx.candidate_model.predict(ctx.features())                  # doctest: +SKIP
        array([0, 1, 1, ...])
        """
        return features_of(model or self.candidate_model, self.data, self.target)


def split_spec(spec: str) -> tuple[str, str]:
    """``"pkg.mod:fn"`` -> ``("pkg.mod", "fn")``; raises ValueError when malformed.

    >>> split_spec("checks.fairness:max_gap")
    ('checks.fairness', 'max_gap')
    """
    module, sep, function = spec.partition(":")
    module, function = module.strip(), function.strip()
    names_ok = all(part.isidentifier() for part in module.split(".")) and all(
        part.isidentifier() for part in function.split("."))
    if not sep or not module or not function or not names_ok:
        raise ValueError(f"a check is 'module:function' (e.g. 'my_checks:no_negative_prices'); "
                         f"got {spec!r}")
    return module, function


def load_check(spec: str) -> UserCheck:
    """Import the function a ``module:function`` spec names.

    Raises:
        ConfigurationError: the spec is malformed, or the module or function cannot be
            imported, naming the spec.

    >>> load_check("math:isfinite")(1.0)
    True
    """
    try:
        module_name, function_name = split_spec(spec)
    except ValueError as exc:
        raise ConfigurationError(f"Invalid check {spec!r}: {exc}.",
                                 hint="Write checks as 'module:function'.") from None
    try:
        module = _import_from_cwd(module_name)
    except Exception as exc:  # the user's module may raise anything while it is imported
        raise ConfigurationError(
            f"Cannot import the module of check {spec!r}: {type(exc).__name__}: {exc}",
            hint="Run from the folder that holds the module, or install it; the current "
                 "directory is searched first.") from None
    target: Any = module
    for part in function_name.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ConfigurationError(
                f"Check {spec!r}: module {module_name!r} has no {function_name!r}.",
                hint="Check the function's name after the colon.")
    if not callable(target):
        raise ConfigurationError(
            f"Check {spec!r} is not a function: it is {type(target).__name__} {target!r:.40}.",
            hint="Point the check at a function that takes one argument (the context).")
    return target  # type: ignore[no-any-return]


def _import_from_cwd(name: str) -> Any:
    cwd = str(Path.cwd())
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    finally:
        if added:
            sys.path.remove(cwd)


def run_check(spec: str, check: UserCheck, context: CheckContext) -> GateCheck:
    """Call ``check(context)`` and turn what it returned (or raised) into a :class:`GateCheck`
    named ``check:<spec>``."""
    name = f"check:{spec}"
    try:
        result = check(context)
    except Exception as exc:  # a broken check is a failed check, never a crashed gate
        return GateCheck(name, False, f"raised {type(exc).__name__}: {exc}")
    detail = ""
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], str):
        result, detail = result
    if isinstance(result, bool | np.bool_):
        return GateCheck(name, bool(result), detail or ("passed" if result else "failed"))
    return GateCheck(name, False, f"returned {type(result).__name__} {result!r:.80}; a check "
                                  "must return a bool or a (bool, detail) pair")
