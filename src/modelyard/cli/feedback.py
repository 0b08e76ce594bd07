"""``modelyard feedback``: record ground truth (``add``, the default) and export logged inputs
with their labels as Parquet (``export``), the loop from production back into training.

``modelyard feedback NAME labels.csv`` keeps working: a first argument that is not a
subcommand goes to ``add``. A model named ``add`` or ``export`` takes the explicit form
(``modelyard feedback add export labels.csv``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from modelyard.cli import monitor
from modelyard.cli.context import client_of
from modelyard.cli.render import console, err_console

__all__ = ["app"]

_DEFAULT = "add"


class DefaultCommandGroup(TyperGroup):
    """A group whose unknown first argument (a model name) runs the default subcommand."""

    # Typed loosely: Typer's click types are private (typer._click).
    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [_DEFAULT, *args]
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=DefaultCommandGroup, no_args_is_help=True,
    help="Ground truth: 'feedback NAME labels.csv' records labels; 'feedback export NAME' "
         "writes logged inputs joined with their labels as Parquet.")

app.command(_DEFAULT)(monitor.feedback)


@app.command("export")
def export(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model whose predictions and labels to export."),
    output: Path = typer.Option(..., "--output", "-o", help="Parquet file to write."),
    since: str | None = typer.Option(None, "--since",
                                     help="Predictions from this long ago (7d, 12h) or this "
                                          "time (ISO 8601) on; default: all."),
    until: str | None = typer.Option(None, "--until",
                                     help="Predictions before this time (or this long ago)."),
    version: int | None = typer.Option(None, "--version", min=1,
                                       help="Only the predictions of this version."),
    unlabelled: bool = typer.Option(False, "--unlabelled/--labelled-only",
                                    help="Keep predictions without a label (label null)."),
) -> None:
    """Write the model's logged inputs joined with their ground truth as Parquet: request_id,
    row, timestamp, version, every input column, prediction, proba_<class>, label,
    label_timestamp (one row per logged input row).

    Example: modelyard feedback export fraud --since 30d -o fraud-labelled.parquet
    """
    import pyarrow.parquet as pq
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from modelyard.monitoring.training_data import parse_time_bound
    from modelyard.pipelines.sources import read_labelled_log

    now = time.time()
    start, end = parse_time_bound(since, now=now), parse_time_bound(until, now=now)
    client = client_of(ctx)
    columns = [SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()]
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task(f"{name}: starting", total=None)

        def step(what: str) -> None:
            bar.update(task, description=f"{escape(name)}: {escape(what)}")

        table = read_labelled_log(client, name, since=start, until=end, version=version,
                                  labelled_only=not unlabelled, progress=step)
        step(f"writing {table.num_rows} rows")
        output.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, output, compression="zstd")
    labelled = _labelled(table)
    if table.num_rows == 0:
        err_console.print(f"No {'' if unlabelled else 'labelled '}predictions of {name!r} in "
                          "the window; wrote an empty file.", highlight=False, soft_wrap=True)
    console.print(f"Wrote {table.num_rows} rows ({labelled} labelled) of {escape(name)} to "
                  f"{escape(str(output))}.", highlight=False, soft_wrap=True)


def _labelled(table: Any) -> int:
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return 0
    return int(pc.sum(pc.is_valid(table.column("label"))).as_py() or 0)
