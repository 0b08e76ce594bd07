"""``modelyard export onnx|bundle|container|k8s``: run a registered model elsewhere."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from modelyard.cli.context import client_of
from modelyard.cli.render import console, err_console, print_json
from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    from modelyard._client import Client
    from modelyard.core.entities import ModelVersion
    from modelyard.export.equivalence import EquivalenceReport

__all__ = ["app"]

app = typer.Typer(
    help="Run a model elsewhere: ONNX (quantized, pruned), offline edge bundles, container "
    "build contexts, Kubernetes and KServe manifests.",
    no_args_is_help=True)


def _sample(client: Client, ref: str, data: Path | None) -> Any:
    """The rows an export is checked on: --data, else the version's reference sample."""
    if data is not None:
        from modelyard.cli.datafiles import read_table

        return read_table(data)
    version = client.resolve(ref)
    if version.profile_digest is None:
        raise InvalidInputError(
            f"{version.uri} was registered without data, so it has no reference sample to "
            "check the export against.", hint="Pass --data inputs.csv (model inputs only).")
    return client.get_reference_sample(version.uri)


def _say_equivalence(report: EquivalenceReport) -> None:
    from modelyard.export.equivalence import describe

    console.print(f"Checked on {report.rows} reference rows: {describe(report)}.",
                  markup=False, soft_wrap=True)


@app.command("onnx")
def onnx(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="The version to export: models:/NAME/3, @alias..."),
    quantize: str | None = typer.Option(
        None, "--quantize", help="dynamic (int8 weights) or static (calibrated on the "
        "reference sample)."),
    prune: float | None = typer.Option(
        None, "--prune", help="Zero this share of the smallest weights per layer (0.3); "
        "neural networks only."),
    tolerance: float = typer.Option(
        1e-4, "--tolerance", help="Largest difference from the original allowed (relative "
        "above 1)."),
    min_agreement: float = typer.Option(
        0.99, "--min-agreement", help="With --quantize/--prune: share of predictions that "
        "must stay the same."),
    data: Path | None = typer.Option(
        None, "--data", help="CSV/Parquet of inputs to check against (default: the "
        "version's reference sample)."),
    max_rows: int = typer.Option(10_000, "--max-rows", min=1,
                                 help="Rows of the sample compared."),
    alias: str | None = typer.Option(None, "--alias", help="Point this alias at the export."),
    json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Convert a version to ONNX, check it and register it as a new version.

    The export is compared with the original on the reference sample and refused beyond
    --tolerance; it is registered with format onnx and its source as lineage parent.

    Example: modelyard export onnx models:/fraud/3 --quantize dynamic
    """
    from modelyard.export.onnx_export import export_onnx
    from modelyard.export.quantize import QUANTIZE_MODES

    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise InvalidInputError(f"--quantize must be one of {list(QUANTIZE_MODES)}. Got "
                                f"{quantize!r} instead.", hint="Example: --quantize dynamic")
    client = client_of(ctx)
    model = client.load(ref)
    done = export_onnx(model, _sample(client, model.version.uri, data), client.register,
                       quantize=quantize, prune=prune, tolerance=tolerance,
                       min_agreement=min_agreement, max_rows=max_rows)
    version = done.version
    if alias is not None:
        client.set_alias(version.name, alias, version.version, reason="set by export onnx")
        version = client.get_version(version.name, version.version)
    if json:
        print_json({**done.to_dict(), "version": version.to_dict()})
        return
    console.print(f"Exported {model.version.uri} ({model.version.format}) to {version.uri} "
                  "[onnx]", markup=False)
    _say_equivalence(done.equivalence)
    if done.optimization is not None:
        from rich.table import Table

        report = done.optimization
        table = Table(title=" + ".join(report.steps), title_justify="left")
        for column in ("", "before (float)", "after"):
            table.add_column(column)
        for row in report.lines():
            table.add_row(*row)
        console.print(table)


@app.command("bundle")
def bundle(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="The version to bundle (ONNX, or converted now)."),
    output: Path = typer.Option(..., "--output", "-o", help="The zip file to write."),
    tolerance: float = typer.Option(1e-4, "--tolerance",
                                    help="When converting: largest difference allowed."),
    data: Path | None = typer.Option(None, "--data",
                                     help="When converting: CSV/Parquet of inputs to check."),
    json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Write an offline bundle that predicts with only numpy and onnxruntime.

    The zip holds model.onnx, the signature, checksums and a predict.py (a CLI and a module).
    A version of another format than onnx is converted (and checked) first.

    Example: modelyard export bundle models:/fraud/4 -o fraud.zip
    """
    from modelyard.export.bundle import write_bundle

    client = client_of(ctx)
    version = client.resolve(ref)
    report = None
    if version.format == "onnx":
        data_bytes = _onnx_file(client, version)
    else:
        from modelyard.export.onnx_export import checked_onnx

        model = client.load(version.uri)
        proto, report, _ = checked_onnx(model, _sample(client, version.uri, data),
                                        tolerance=tolerance)
        data_bytes = proto.SerializeToString()
    written = write_bundle(output, data_bytes, version, converted=report is not None)
    if json:
        print_json({**written.to_dict(), "model": version.uri,
                    "equivalence": report.to_dict() if report else None})
        return
    if report is not None:
        _say_equivalence(report)
    console.print(f"Wrote {written.path} ({written.size_bytes} bytes) for {version.uri}. "
                  f"Unzip it and run: python predict.py input.csv -o predictions.jsonl",
                  markup=False, soft_wrap=True)


def _onnx_file(client: Client, version: ModelVersion) -> bytes:
    with tempfile.TemporaryDirectory(prefix="modelyard-bundle-") as tmp:
        client.artifacts.fetch_tree(version.artifact_digest, tmp)  # verifies checksums
        return (Path(tmp) / str(version.runtime_meta.get("file", "model.onnx"))).read_bytes()


@app.command("container")
def container(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="The version to serve: models:/NAME@production..."),
    output: Path = typer.Option(..., "--output", "-o", help="An empty folder to write into."),
    wheel: Path | None = typer.Option(
        None, "--wheel", help="A modelyard wheel to install (default: built from this "
        "source checkout)."),
    grpc: bool = typer.Option(False, "--grpc", help="Serve gRPC on 8081 too."),
    port: int = typer.Option(8080, "--port", help="REST port inside the container."),
    with_keys: bool = typer.Option(
        False, "--with-keys", help="Copy the registry's API keys (salted hashes) so the "
        "container can require them."),
    no_profile: bool = typer.Option(
        False, "--no-profile", help="Leave out the reference profile (a sample of the "
        "registration data); monitoring in the container then has no reference."),
    json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Write a Docker build context serving one version, the model baked in.

    Example: modelyard export container models:/fraud@production -o build/
    """
    from modelyard.export.container import write_container_context

    client = client_of(ctx)
    version = client.resolve(ref)
    written = write_container_context(client, version, output, wheel=wheel, grpc=grpc,
                                      port=port, with_keys=with_keys,
                                      with_profile=not no_profile)
    if json:
        print_json(written.to_dict())
        return
    console.print(f"Wrote a build context for {version.uri} to {written.directory}.",
                  markup=False)
    console.print(f"  docker build -t {written.image} {written.directory}\n"
                  f"  docker run --rm -p {port}:{port} {written.image} --no-auth",
                  markup=False)
    if not with_keys:
        err_console.print(
            "The server refuses a non-loopback address without API keys: run it with "
            "--no-auth behind an authenticating gateway, or rebuild with --with-keys. See "
            f"{escape(str(written.directory / 'README.md'))}.", soft_wrap=True)


@app.command("k8s")
def k8s(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="The version the image serves."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the YAML files."),
    image: str | None = typer.Option(
        None, "--image", help="Image reference (default: modelyard-NAME:VERSION)."),
    replicas: int = typer.Option(2, "--replicas", min=1, help="Replicas (autoscaler min)."),
    max_replicas: int | None = typer.Option(None, "--max-replicas", min=1,
                                            help="Autoscaler maximum (default 4x)."),
    namespace: str | None = typer.Option(None, "--namespace", "-n",
                                         help="Namespace of every object (default: none)."),
    port: int = typer.Option(8080, "--port",
                             help="Port the server listens on in the container (REST)."),
    kserve: bool = typer.Option(False, "--kserve",
                                help="Write a KServe InferenceService instead."),
    grpc: bool = typer.Option(False, "--grpc", help="Expose gRPC on 8081 (not with KServe)."),
    no_auth: bool = typer.Option(
        False, "--no-auth", help="Serve without API keys (behind an authenticating gateway)."),
    json: bool = typer.Option(False, "--json", help="Print the manifests as JSON."),
) -> None:
    """Write Kubernetes manifests, or a KServe InferenceService, for a version's image.

    Plain: Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget. With --kserve:
    an InferenceService running the image as a custom v2-protocol predictor.

    Example: modelyard export k8s models:/fraud@production -o k8s/ --image ghcr.io/acme/fraud:3
    """
    from modelyard.export.k8s import K8sOptions, k8s_manifests, kserve_manifests, write_manifests

    if kserve and grpc:
        raise InvalidInputError("--grpc does not apply with --kserve: a KServe predictor "
                                "exposes one port.", hint="Drop --grpc.")
    version = client_of(ctx).resolve(ref)
    options = K8sOptions(image=image, replicas=replicas, max_replicas=max_replicas,
                         namespace=namespace, port=port, grpc=grpc,
                         args=("--no-auth",) if no_auth else ())
    docs = kserve_manifests(version, options) if kserve else k8s_manifests(version, options)
    paths = write_manifests(docs, output, source=version.uri)
    if json:
        print_json({"files": [str(p) for p in paths], "manifests": docs})
        return
    console.print(f"Wrote {', '.join(p.name for p in paths)} to {output} for {version.uri}. "
                  f"Apply with: kubectl apply -f {output}", markup=False, soft_wrap=True)
