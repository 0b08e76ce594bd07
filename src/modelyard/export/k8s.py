"""Kubernetes manifests for a modelyard image: plain resources or a KServe InferenceService.

:func:`k8s_manifests` gives a Deployment (readiness on ``/v2/health/ready``, liveness and
startup on ``/v2/health/live``, CPU and memory requests and limits, Prometheus scrape
annotations, a non-root and read-only-root security context with ``emptyDir`` volumes for
``MODELYARD_HOME`` and ``/tmp``), a Service, a HorizontalPodAutoscaler (``autoscaling/v2``, on
CPU) and a PodDisruptionBudget (``policy/v1``). :func:`kserve_manifests` gives one KServe
``InferenceService`` (``serving.kserve.io/v1beta1``) running the same image as a custom
predictor container, which speaks the Open Inference Protocol v2 on port 8080.

Manifests are plain dicts, written as YAML by :func:`write_manifests`; the tests load each into
the official ``kubernetes`` client's models with strict field checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard.core.entities import ModelVersion
from modelyard.errors import InvalidInputError
from modelyard.export.container import HOME, UID, dns_name, image_name

__all__ = ["K8sOptions", "k8s_manifests", "kserve_manifests", "write_manifests"]

_READY = "/v2/health/ready"
_LIVE = "/v2/health/live"
_GRPC_PORT = 8081


@dataclass(frozen=True, slots=True)
class K8sOptions:
    """Choices for the manifests; the defaults suit a small CPU model."""

    image: str | None = None
    """The image (``registry/repo:tag``); default: ``modelyard-NAME:VERSION``."""

    replicas: int = 2
    """Replicas to start with, and the autoscaler's minimum."""

    max_replicas: int | None = None
    """The autoscaler's maximum; default: four times ``replicas``."""

    namespace: str | None = None
    port: int = 8080
    grpc: bool = False
    cpu_request: str = "500m"
    cpu_limit: str = "2"
    memory_request: str = "512Mi"
    memory_limit: str = "2Gi"
    target_cpu_percent: int = 70
    """Average CPU use (of the request) the autoscaler aims for."""

    args: tuple[str, ...] = ()
    """Extra ``modelyard serve`` arguments, e.g. ``("--no-auth",)``."""

    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment variables (``MODELYARD_*`` settings)."""

    def check(self) -> None:
        """Raise :class:`InvalidInputError` for options that cannot work."""
        if self.replicas < 1:
            raise InvalidInputError(f"--replicas must be at least 1. Got {self.replicas}.")
        if self.max_replicas is not None and self.max_replicas < self.replicas:
            raise InvalidInputError(
                f"--max-replicas ({self.max_replicas}) must be at least --replicas "
                f"({self.replicas}).")
        if not 0 < self.port < 65536:
            raise InvalidInputError(f"The port must be 1-65535. Got {self.port}.")
        if not 1 <= self.target_cpu_percent <= 100:
            raise InvalidInputError(
                f"The CPU target must be 1-100%. Got {self.target_cpu_percent}.")


def k8s_manifests(version: ModelVersion, options: K8sOptions | None = None,
                  ) -> dict[str, dict[str, Any]]:
    """Deployment, Service, HorizontalPodAutoscaler and PodDisruptionBudget serving the image
    of ``version``, by file name.

    >>> docs = k8s_manifests(client.resolve("models:/fraud/3"))   # doctest: +SKIP
    >>> sorted(docs)                                               # doctest: +SKIP
    ['deployment.yaml', 'hpa.yaml', 'pdb.yaml', 'service.yaml']
    """
    opts = options or K8sOptions()
    opts.check()
    name = _resource_name(version)
    labels = _labels(version)
    selector = {k: labels[k] for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance")}
    ports = [{"name": "http", "containerPort": opts.port, "protocol": "TCP"}]
    if opts.grpc:
        ports.append({"name": "grpc", "containerPort": _GRPC_PORT, "protocol": "TCP"})
    container = {
        "name": "server",
        "image": opts.image or image_name(version),
        "imagePullPolicy": "IfNotPresent",
        "args": _args(opts),
        "env": _env(opts),
        "ports": ports,
        "readinessProbe": _probe(_READY, "http", period=5),
        "livenessProbe": _probe(_LIVE, "http", period=10),
        # Loading a model can take a while; liveness waits until the server first answers.
        "startupProbe": {**_probe(_LIVE, "http", period=2), "failureThreshold": 90},
        "resources": _resources(opts),
        "securityContext": _container_security(),
        # Let the Service drop the pod before the server stops taking requests.
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
        "volumeMounts": _mounts(),
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(name, opts, labels, version),
        "spec": {
            "replicas": opts.replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(opts.port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    # Longer than the server's request timeout (30 s) plus the preStop pause.
                    "terminationGracePeriodSeconds": 45,
                    "securityContext": _pod_security(),
                    "containers": [container],
                    "volumes": _volumes(),
                },
            },
        },
    }
    service_ports = [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    if opts.grpc:
        service_ports.append({"name": "grpc", "port": _GRPC_PORT, "targetPort": "grpc",
                              "protocol": "TCP"})
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(name, opts, labels, version),
        "spec": {"type": "ClusterIP", "selector": selector, "ports": service_ports},
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(name, opts, labels, version),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": opts.replicas,
            "maxReplicas": _max_replicas(opts),
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": opts.target_cpu_percent},
            }}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(name, opts, labels, version),
        # One pod at a time may go for node maintenance, whatever the replica count.
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
    }
    return {"deployment.yaml": deployment, "service.yaml": service, "hpa.yaml": hpa,
            "pdb.yaml": pdb}


def kserve_manifests(version: ModelVersion, options: K8sOptions | None = None,
                     ) -> dict[str, dict[str, Any]]:
    """A KServe InferenceService serving the image of ``version`` as a custom predictor that
    speaks the v2 protocol (KServe autoscales it, so no HPA or PDB)."""
    opts = options or K8sOptions()
    opts.check()
    labels = _labels(version)
    metadata = _metadata(_resource_name(version, prefix=""), opts, labels, version)
    metadata["annotations"].update({
        "serving.kserve.io/enable-prometheus-scraping": "true",
        "modelyard.io/protocol": "v2",
    })
    container = {
        "name": "kserve-container",  # the name KServe expects for a custom predictor
        "image": opts.image or image_name(version),
        "imagePullPolicy": "IfNotPresent",
        "args": _args(opts),
        "env": _env(opts),
        # One port (Knative routes HTTP/1 to it); probes may only name that port.
        "ports": [{"name": "http1", "containerPort": opts.port, "protocol": "TCP"}],
        "readinessProbe": _probe(_READY, opts.port, period=5),
        "livenessProbe": _probe(_LIVE, opts.port, period=10),
        "resources": _resources(opts),
        "securityContext": _container_security(),
        "volumeMounts": _mounts(),
    }
    service = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {
            "predictor": {
                "minReplicas": opts.replicas,
                "maxReplicas": _max_replicas(opts),
                "scaleMetric": "cpu",
                "scaleTarget": opts.target_cpu_percent,
                "timeout": 30,
                "securityContext": _pod_security(),
                "containers": [container],
                "volumes": _volumes(),
            },
        },
    }
    return {"inferenceservice.yaml": service}


def write_manifests(docs: Mapping[str, Mapping[str, Any]], output: str | Path, *,
                    source: str = "") -> list[Path]:
    """Write each manifest as YAML into ``output``; return the paths written."""
    import yaml

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    header = f"# Written by 'modelyard export k8s'{f' for {source}' if source else ''}.\n"
    written = []
    for filename, doc in docs.items():
        path = out / filename
        path.write_text(header + yaml.safe_dump(dict(doc), sort_keys=False,
                                                default_flow_style=False))
        written.append(path)
    return written


# -- pieces ----------------------------------------------------------------------------------
def _resource_name(version: ModelVersion, *, prefix: str = "modelyard-") -> str:
    # 52 characters leave room for the suffixes Kubernetes adds to pod names.
    return (prefix + dns_name(version.name))[:52].strip("-")


def _labels(version: ModelVersion) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "modelyard",
        "app.kubernetes.io/instance": dns_name(version.name),
        "app.kubernetes.io/version": str(version.version),
        "app.kubernetes.io/component": "predictor",
        "app.kubernetes.io/managed-by": "modelyard",
    }


def _metadata(name: str, opts: K8sOptions, labels: dict[str, str],
              version: ModelVersion) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(labels),
                            "annotations": {"modelyard.io/model": version.uri,
                                            "modelyard.io/format": version.format}}
    if opts.namespace:
        meta["namespace"] = opts.namespace
    return meta


def _args(opts: K8sOptions) -> list[str]:
    args = ["--port", str(opts.port)]
    if opts.grpc:
        args += ["--grpc-port", str(_GRPC_PORT)]
    return args + list(opts.args)


def _env(opts: K8sOptions) -> list[dict[str, str]]:
    env = {"MODELYARD_HOME": HOME, "MODELYARD_SERVING__HOST": "0.0.0.0", **opts.env}
    return [{"name": k, "value": str(v)} for k, v in env.items()]


def _probe(path: str, port: str | int, *, period: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": period, "timeoutSeconds": 3,
            "failureThreshold": 3}


def _resources(opts: K8sOptions) -> dict[str, Any]:
    return {"requests": {"cpu": opts.cpu_request, "memory": opts.memory_request},
            "limits": {"cpu": opts.cpu_limit, "memory": opts.memory_limit}}


def _pod_security() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"}}


def _container_security() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}


def _mounts() -> list[dict[str, str]]:
    return [{"name": "modelyard-home", "mountPath": HOME}, {"name": "tmp", "mountPath": "/tmp"}]


def _volumes() -> list[dict[str, Any]]:
    # MODELYARD_HOME gets the registry copy and the inference log; /tmp the model files a
    # load unpacks. Both are per pod and go with it.
    return [{"name": "modelyard-home", "emptyDir": {"sizeLimit": "2Gi"}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]


def _max_replicas(opts: K8sOptions) -> int:
    return opts.max_replicas if opts.max_replicas is not None else max(4, 4 * opts.replicas)

