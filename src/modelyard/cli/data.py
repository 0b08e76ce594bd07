"""``modelyard data audit``: data-quality checks of a file against a version's reference."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from rich.text import Text

from modelyard.cli.context import client_of
from modelyard.cli.datafiles import read_table
from modelyard.cli.render import console, print_json
from modelyard.core.yaml_files import read_yaml_mapping
from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    from modelyard.monitoring.quality import QualityCheck, QualityConfig, QualityReport

__all__ = ["CHECKS_FAILED", "app", "audit", "load_quality_config"]

CHECKS_FAILED = 1
"""Exit code when the audit ran and a check failed (docs/cli.md, "Exit codes"). Nothing else
``data audit`` can meet exits with 1: bad input is 2, an unknown model or file 3."""

app = typer.Typer(help="Check data against a model version's reference.", no_args_is_help=True)


@app.command("audit")
def audit(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="Data to check: .csv, .parquet or .jsonl."),
    against: str = typer.Option(..., "--against", "-a",
                                help="The version whose reference to check against: "
                                     "models:/NAME@production, models:/NAME/3 ..."),
    config: Path | None = typer.Option(None, "--config", "-c",
                                       help="YAML file of thresholds (see docs/cli.md)."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    all_checks: bool = typer.Option(False, "--all", help="List passing checks too "
                                                        "(default: only the failed ones)."),
) -> None:
    """Check a data file against a version's reference profile and signature.

    Checks missing values, type mismatches, values outside the reference range, unseen
    categories, missing or unexpected columns and duplicate rows; exits 1 when one fails.

    Example: modelyard data audit today.parquet --against models:/fraud@production
    """
    from modelyard.monitoring.quality import QualityConfig, check_quality

    quality = load_quality_config(config) if config is not None else QualityConfig()
    client = client_of(ctx)
    version = client.resolve(against)
    profile = client.get_profile(version.uri)  # the version resolved, even if the alias moves
    frame = read_table(file)
    if len(frame) == 0:
        raise InvalidInputError(f"{str(file)!r} has no rows to audit.",
                                hint="Check that the file holds data below its header.")
    report = check_quality(frame, profile, signature=version.signature, config=quality)
    target = version.uri + (f" (@{', @'.join(version.aliases)})" if version.aliases else "")
    if json:
        print_json({"file": str(file), "model": version.uri, "aliases": list(version.aliases),
                    **report.to_dict()})
    else:
        _print_report(report, f"Data quality of {file.name} against {target}",
                      show_passed=all_checks)
    if not report.passed:
        raise typer.Exit(CHECKS_FAILED)


def load_quality_config(path: Path) -> QualityConfig:
    """Read :class:`~modelyard.monitoring.quality.QualityConfig` thresholds from a YAML file."""
    from pydantic import ValidationError

    from modelyard.monitoring.quality import QualityConfig

    doc = read_yaml_mapping(path, what="quality config", contents="thresholds",
                            hint="Example: 'missing_margin: 0.02'.")
    try:
        return QualityConfig.model_validate(doc)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InvalidInputError(
            f"Invalid quality config {str(path)!r}: {where}: {first['msg']}{more}.",
            hint="The fields are listed under 'data audit' in docs/cli.md.",
        ) from None


def _print_report(report: QualityReport, title: str, *, show_passed: bool) -> None:
    shown = [c for c in report.checks if show_passed or not c.passed]
    table = Table(title=f"{title}: {report.n_rows:,} rows", title_justify="left")
    for name in ("check", "column", "value", "threshold", "result"):
        table.add_column(name, no_wrap=True)
    table.add_column("detail", overflow="fold")
    for check in shown:
        # Text, not str: column names and values are user text that must not parse as markup.
        table.add_row(
            Text(check.name), Text(check.column or ""), Text(_number(check, check.value)),
            Text(_number(check, check.threshold)),
            Text("PASS", style="green") if check.passed else Text("FAIL", style="bold red"),
            Text(check.detail),
        )
    if shown:
        console.print(table)
    else:
        console.print(f"{title}: {report.n_rows:,} rows", markup=False, soft_wrap=True)
    failed = report.failed()
    if failed:
        names = ", ".join(_label(c) for c in failed)
        console.print(f"{len(failed)} of {len(report.checks)} checks failed: {names}",
                      markup=False, soft_wrap=True)
    else:
        console.print(f"All {len(report.checks)} checks passed.", markup=False)


def _number(check: QualityCheck, value: float) -> str:
    if check.name == "schema":
        return f"{value:g}"
    return f"{value * 100:.4g}%"


def _label(check: QualityCheck) -> str:
    return f"{check.name}({check.column})" if check.column is not None else check.name

