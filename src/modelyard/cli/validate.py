"""``modelyard validate CANDIDATE --against CHAMPION --data HOLDOUT``: the release gate."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from rich.text import Text

from modelyard.cli.context import client_of
from modelyard.cli.datafiles import read_table
from modelyard.cli.render import console, print_json
from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    from modelyard.pipelines.gates import ValidationReport

__all__ = ["GATES_FAILED", "validate", "write_report"]

GATES_FAILED = 1
"""Exit code when validation ran and a gate failed; bad input is 2, an unknown model or file
3, an invalid gates file 6 (docs/ci.md, "Exit codes")."""


def validate(
    ctx: typer.Context,
    candidate: str = typer.Argument(...,
                                    help="The candidate: models:/NAME/5, models:/NAME@staging."),
    against: str | None = typer.Option(
        None, "--against", "-a",
        help="The champion to compare with, e.g. models:/NAME@production (default: none; "
             "delta gates then pass)."),
    data: Path = typer.Option(..., "--data", "-d",
                              help="The labelled holdout: .csv, .parquet or .jsonl."),
    config: Path | None = typer.Option(None, "--config", "-c",
                                       help="The gates, a YAML file (see docs/ci.md)."),
    target: str | None = typer.Option(
        None, "--target", "-t",
        help="The holdout's label column (default: the gates' target, else the one column "
             "that is not a model input)."),
    report: Path | None = typer.Option(None, "--report", "-r",
                                       help="Also write the report as JSON to this file."),
    json: bool = typer.Option(False, "--json", help="Print the report as JSON, not tables."),
) -> None:
    """Check a candidate version before it replaces the champion; exit 1 when a gate fails.

    Gates: signature compatibility with the champion, metric floors and ceilings, beating
    the champion's metrics on the same holdout, p99 latency of single-row predicts, artifact
    size, and your own module:function checks.

    Example: modelyard validate models:/churn/8 --against models:/churn@production
    --data holdout.parquet --config gates.yaml --report validation.json
    """
    from modelyard.pipelines.gates import GatesConfig, load_gates
    from modelyard.pipelines.gates import validate as run_validation

    gates = load_gates(config) if config is not None else GatesConfig()
    frame = read_table(data)
    if len(frame) == 0:
        raise InvalidInputError(f"{str(data)!r} has no rows to validate on.",
                                hint="Check that the file holds data below its header.")
    result = run_validation(client_of(ctx), candidate, data=frame, against=against,
                            config=gates, target=target)
    if report is not None:
        write_report(result, report)
    if json:
        print_json(result.to_dict())
    else:
        _print(result, data.name)
    if not result.passed:
        raise typer.Exit(GATES_FAILED)


def write_report(result: ValidationReport, path: Path) -> None:
    """Write ``result`` as indented JSON to ``path``, creating its folder."""
    import orjson

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    except OSError as exc:
        raise InvalidInputError(f"Cannot write the report to {str(path)!r}: {exc}.",
                                hint="Check the --report path and its permissions.") from None


def _print(result: ValidationReport, holdout: str) -> None:
    against = f" against {result.champion}" if result.champion else " (no champion)"
    checks = Table(title=f"Validation of {result.candidate}{against} on {holdout}: "
                         f"{result.rows:,} rows", title_justify="left")
    for name in ("check", "result", "value", "threshold"):
        checks.add_column(name, no_wrap=True)
    checks.add_column("detail", overflow="fold")
    for check in result.checks:
        # Text, not str: details quote user text (column names, exceptions), never markup.
        checks.add_row(
            Text(check.name),
            Text("PASS", style="green") if check.passed else Text("FAIL", style="bold red"),
            Text(_number(check.value)), Text(_number(check.threshold)), Text(check.detail))
    if result.checks:
        console.print(checks)
    names = sorted(set(result.candidate_metrics) | set(result.champion_metrics))
    if names:
        metrics = Table(title="Metrics on the holdout", title_justify="left")
        for name in ("metric", "candidate", "champion", "delta"):
            metrics.add_column(name, no_wrap=True)
        for name in names:
            mine = result.candidate_metrics.get(name)
            theirs = result.champion_metrics.get(name)
            delta = mine - theirs if mine is not None and theirs is not None else None
            metrics.add_row(Text(name), Text(_number(mine)), Text(_number(theirs)),
                            Text(_number(delta, signed=True)))
        console.print(metrics)
    failed = result.failed()
    if failed:
        console.print(f"FAILED: {len(failed)} of {len(result.checks)} checks failed: "
                      f"{', '.join(c.name for c in failed)}", markup=False, soft_wrap=True)
    else:
        console.print(f"PASSED: all {len(result.checks)} checks passed.", markup=False)


def _number(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:+.5g}" if signed else f"{value:.5g}"
