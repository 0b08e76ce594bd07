"""``modelyard models list|show|versions``."""

from __future__ import annotations

import typer

from modelyard.cli.context import client_of
from modelyard.cli.render import console, print_json, print_table, when
from modelyard.core.entities import ModelVersion
from modelyard.core.references import ModelRef

__all__ = ["app"]

app = typer.Typer(help="List and inspect registered models.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")


@app.command("list")
def list_models(
    ctx: typer.Context,
    all_: bool = typer.Option(False, "--all", help="Include archived models."),
    json: bool = JSON,
) -> None:
    """List registered models.

    Example: modelyard models list --json
    """
    models = client_of(ctx).list_models(include_archived=all_)
    if json:
        print_json([m.to_dict() for m in models])
        return
    if not models:
        console.print("No models registered yet. Try: modelyard register PATH --name NAME")
        return
    print_table(
        "Registered models",
        ["name", "latest", "aliases", "status", "updated", "description"],
        [
            (m.name, m.latest_version,
             ", ".join(f"{a}->{v}" for a, v in sorted(m.aliases.items())), m.status,
             when(m.updated_at), m.description)
            for m in models
        ],
    )


@app.command("show")
def show(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="NAME, or a version: models:/NAME/3, models:/NAME@alias"),
    json: bool = JSON,
) -> None:
    """Show a model, or one version with its lineage and signature.

    Example: modelyard models show models:/fraud@production
    """
    client = client_of(ctx)
    parsed = ModelRef.parse(ref)
    if parsed.is_latest and "/" not in ref.removeprefix("models:/"):
        model = client.get_model(parsed.name)
        if json:
            print_json(model.to_dict())
            return
        console.print(
            f"[bold]{model.name}[/]  status={model.status}  latest={model.latest_version}"
        )
        if model.description:
            console.print(model.description, markup=False)
        for alias_name, version in sorted(model.aliases.items()):
            console.print(f"  @{alias_name} -> version {version}")
        if model.tags:
            console.print("  tags: " + ", ".join(f"{k}={v}" for k, v in model.tags.items()),
                          markup=False)
        return
    found = client.resolve(parsed)
    if json:
        print_json(found.to_dict())
        return
    _print_version(found)


def _print_version(v: ModelVersion) -> None:
    console.print(f"[bold]{v.uri}[/]  format={v.format}  status={v.status}"
                  + (f"  aliases={','.join(v.aliases)}" if v.aliases else ""))
    console.print(f"  registered {when(v.created_at)} by {v.created_by}; "
                  f"{v.size_bytes:,} bytes; artifact sha256:{v.artifact_digest[:16]}",
                  markup=False)
    lin = v.lineage
    if lin.parent_version is not None:
        console.print(f"  parent: version {lin.parent_version}")
    if lin.metrics:
        console.print("  metrics: " + ", ".join(f"{k}={val:.4g}" for k, val in lin.metrics.items()),
                      markup=False)
    if lin.params:
        console.print("  params: " + ", ".join(f"{k}={val}" for k, val in lin.params.items()),
                      markup=False)
    if lin.data:
        console.print(f"  data: {lin.data.rows:,} rows, {len(lin.data.schema)} columns, "
                      f"sha256:{lin.data.sha256[:16]}")
    if lin.code:
        console.print(f"  code: {lin.code.commit[:12]}{' (dirty)' if lin.code.dirty else ''}")
    if v.signature:
        names = v.signature.inputs.names
        shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
        console.print(f"  inputs ({v.signature.inputs.kind}): {shown}", markup=False)


@app.command("versions")
def versions(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    json: bool = JSON,
) -> None:
    """List the versions of a model.

    Example: modelyard models versions fraud
    """
    items = client_of(ctx).list_versions(name)
    if json:
        print_json([v.to_dict() for v in items])
        return
    print_table(
        f"Versions of {name}",
        ["version", "format", "status", "aliases", "registered", "by", "metrics"],
        [
            (v.version, v.format, v.status, ", ".join(v.aliases), when(v.created_at),
             v.created_by, ", ".join(f"{k}={val:.4g}" for k, val in v.lineage.metrics.items()))
            for v in items
        ],
    )
