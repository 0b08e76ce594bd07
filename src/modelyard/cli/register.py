"""``modelyard register PATH --name NAME``."""

from __future__ import annotations

from pathlib import Path

import typer

from modelyard.cli.context import client_of
from modelyard.cli.datafiles import read_table
from modelyard.cli.options import parse_pairs
from modelyard.cli.render import console, print_json
from modelyard.errors import InvalidInputError

__all__ = ["register"]


def register(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="A saved model: .skops, .onnx, .pt/.pt2, XGBoost "
                                ".json/.ubj, LightGBM .txt, or an MLflow model folder."),
    name: str = typer.Option(..., "--name", "-n", help="Registered model name."),
    data: Path | None = typer.Option(None, "--data", help="CSV/Parquet of inputs: signature, "
                                     "fingerprint and reference profile."),
    target: str | None = typer.Option(None, "--target", help="Column of --data to leave out "
                                      "(the label)."),
    alias: str | None = typer.Option(None, "--alias", help="Point this alias at the version."),
    metric: list[str] | None = typer.Option(None, "--metric", help="KEY=NUMBER, repeatable."),
    param: list[str] | None = typer.Option(None, "--param", help="KEY=VALUE, repeatable."),
    tag: list[str] | None = typer.Option(None, "--tag", help="KEY=VALUE, repeatable."),
    description: str = typer.Option("", "--description", "-d"),
    trust_pickle: bool = typer.Option(False, "--trust-pickle", help="Accept a pickle/joblib "
                                      "file (it can run code when loaded); stored as skops."),
    trust_type: list[str] | None = typer.Option(None, "--trust-type",
                                                help="A type a skops file may contain."),
    sensitive: str | None = typer.Option(
        None, "--sensitive", help="Comma-separated input columns that never reach the "
        "inference log in clear (e.g. ssn,email)."),
    json: bool = typer.Option(False, "--json", help="Print the new version as JSON."),
) -> None:
    """Register a saved model file or MLflow model folder as a new version.

    Example: modelyard register model.onnx --name fraud --data val.parquet --alias staging
    """
    frame = read_table(data) if data is not None else None
    if frame is not None and target is not None:
        if target not in frame.columns:
            raise InvalidInputError(f"--target {target!r} is not a column of {str(data)!r}.")
        frame = frame.drop(columns=[target])
    metrics_raw = parse_pairs(metric, "--metric")
    try:
        metrics = {k: float(v) for k, v in metrics_raw.items()}
    except ValueError:
        raise InvalidInputError("Every --metric value must be a number, e.g. --metric "
                                "accuracy=0.93.") from None
    version = client_of(ctx).register(
        path, name, data=frame, metrics=metrics, params=parse_pairs(param, "--param"),
        tags=parse_pairs(tag, "--tag"), description=description, alias=alias,
        trust_pickle=trust_pickle, trusted_types=trust_type or (),
        sensitive=[c.strip() for c in (sensitive or "").split(",") if c.strip()],
    )
    if json:
        print_json(version.to_dict())
        return
    aliases = f" (@{', @'.join(version.aliases)})" if version.aliases else ""
    console.print(f"Registered {version.uri}{aliases} [{version.format}]", markup=False)
