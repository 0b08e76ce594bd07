"""Run the same model everywhere: ONNX exports (quantized, pruned), offline edge bundles,
container build contexts and Kubernetes/KServe manifests.

Nothing here talks to the registry by itself: callers (the CLI) load the model, fetch its
reference sample and pass ``Client.register`` (or the client, for container contexts) in.

>>> from modelyard import Client
>>> from modelyard.export import export_onnx
>>> client = Client()                                                     # doctest: +SKIP
>>> ref = "models:/fraud/3"                                               # doctest: +SKIP
>>> export_onnx(client.load(ref), client.get_reference_sample(ref),
...             client.register, quantize="dynamic").version.uri          # doctest: +SKIP
'models:/fraud/4'
"""

from __future__ import annotations

from modelyard.export.bundle import Bundle, bundle_files, write_bundle
from modelyard.export.container import (
    ContainerContext,
    RegistrySource,
    build_wheel,
    export_registry,
    write_container_context,
)
from modelyard.export.equivalence import EquivalenceReport, compare
from modelyard.export.k8s import K8sOptions, k8s_manifests, kserve_manifests, write_manifests
from modelyard.export.onnx_export import (
    SUPPORTED_FORMATS,
    OnnxExport,
    RegisterVersion,
    checked_onnx,
    export_onnx,
    to_onnx,
)
from modelyard.export.quantize import QUANTIZE_MODES, ModelStats, OptimizationReport

__all__ = [
    "QUANTIZE_MODES",
    "SUPPORTED_FORMATS",
    "Bundle",
    "ContainerContext",
    "EquivalenceReport",
    "K8sOptions",
    "ModelStats",
    "OnnxExport",
    "OptimizationReport",
    "RegisterVersion",
    "RegistrySource",
    "build_wheel",
    "bundle_files",
    "checked_onnx",
    "compare",
    "export_onnx",
    "export_registry",
    "k8s_manifests",
    "kserve_manifests",
    "to_onnx",
    "write_bundle",
    "write_container_context",
    "write_manifests",
]
