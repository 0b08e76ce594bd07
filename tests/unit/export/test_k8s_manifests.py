"""Every generated manifest is a valid Kubernetes object.

Plain resources are loaded into the official ``kubernetes`` client's model classes with strict
checks: an unknown field anywhere (a typo such as ``readinesProbe``) fails, and so do wrong
types and missing required fields. The KServe InferenceService is checked against a small
schema written from the CRD's documented fields (``serving.kserve.io/v1beta1``): the predictor's
component-extension fields here, its pod fields with the client's ``V1PodSpec``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes.client as k8s
import pytest
import yaml

from modelyard.core.entities import Lineage, ModelVersion, Status
from modelyard.errors import InvalidInputError
from modelyard.export.k8s import K8sOptions, k8s_manifests, kserve_manifests, write_manifests

KINDS = {
    ("apps/v1", "Deployment"): "V1Deployment",
    ("v1", "Service"): "V1Service",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2HorizontalPodAutoscaler",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
}


def _version(name: str = "fraud", number: int = 3) -> ModelVersion:
    return ModelVersion(
        name=name, version=number, format="sklearn", status=Status.READY,
        created_at=datetime(2026, 1, 1, tzinfo=UTC), created_by="tester",
        artifact_digest="ab" * 32, size_bytes=10, signature=None, lineage=Lineage())


# -- strict validation with the kubernetes client's models --------------------------------------
_CONTAINER = re.compile(r"^(?:List|list)\[(.*)\]$")
_MAPPING = re.compile(r"^(?:Dict\[|dict\()([^,]*), (.*)[\])]$")
_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "bool": (bool,), "float": (int, float),
    "object": (str, int, float, bool, dict, list),  # IntOrString, quantities, raw JSON
    "datetime": (str,), "date": (str,),
}


def strict_check(data: Any, kind: str, path: str = "$") -> None:
    """Walk ``data`` along the client's type map: unknown keys and wrong types fail."""
    kind = kind.removeprefix("Optional[").removesuffix("]") if kind.startswith(
        "Optional[") else kind
    if match := _CONTAINER.match(kind):
        assert isinstance(data, list), f"{path}: expected a list, got {data!r}"
        for i, item in enumerate(data):
            strict_check(item, match.group(1), f"{path}[{i}]")
        return
    if match := _MAPPING.match(kind):
        assert isinstance(data, dict), f"{path}: expected a mapping, got {data!r}"
        for key, value in data.items():
            assert isinstance(key, str), f"{path}: key {key!r} is not a string"
            strict_check(value, match.group(2), f"{path}.{key}")
        return
    if kind in _PRIMITIVES:
        allowed = _PRIMITIVES[kind]
        ok = isinstance(data, allowed) and not (kind == "int" and isinstance(data, bool))
        assert ok, f"{path}: expected {kind}, got {data!r}"
        return
    model = getattr(k8s, kind)
    assert isinstance(data, dict), f"{path}: expected a {kind} object, got {data!r}"
    by_json = {json_key: attr for attr, json_key in model.attribute_map.items()}
    unknown = sorted(set(data) - set(by_json))
    assert not unknown, f"{path}: unknown field(s) {unknown} for {kind}"
    for key, value in data.items():
        strict_check(value, model.openapi_types[by_json[key]], f"{path}.{key}")


def load_model(doc: dict[str, Any], kind: str) -> Any:
    """Build the client's model from ``doc``: required fields and values checked too."""
    strict_check(doc, kind)
    model = getattr(k8s, kind)
    if hasattr(model, "model_validate"):  # kubernetes >= 32: pydantic models, extra=forbid
        return model.model_validate(doc)
    import json

    class _Response:
        data = json.dumps(doc)

    return k8s.ApiClient().deserialize(_Response(), kind)  # pragma: no cover - old clients


OPTIONS = [
    K8sOptions(),
    K8sOptions(image="ghcr.io/acme/fraud:3", replicas=3, max_replicas=9, namespace="ml",
               grpc=True, args=("--no-auth",), env={"MODELYARD_MONITORING__EVERY": "5m"}),
    K8sOptions(replicas=1, cpu_request="250m", memory_limit="1Gi", target_cpu_percent=50),
]
OPTION_IDS = ["defaults", "grpc-namespace-no-auth", "one-replica"]


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_every_manifest_loads_strictly(options: K8sOptions) -> None:
    docs = k8s_manifests(_version(), options)
    assert sorted(docs) == ["deployment.yaml", "hpa.yaml", "pdb.yaml", "service.yaml"]
    for doc in docs.values():
        load_model(doc, KINDS[(doc["apiVersion"], doc["kind"])])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(readinesProbe={}),
         "unknown field"),
        (lambda d: d["spec"].update(replicas="two"), "expected int"),
        (lambda d: d["spec"]["template"]["spec"].update(containers=[{"image": "x"}]),
         "name"),
    ],
    ids=["typo", "wrong-type", "missing-required"],
)
def test_the_strict_loader_rejects_broken_manifests(mutate: Any, message: str) -> None:
    doc = k8s_manifests(_version())["deployment.yaml"]
    mutate(doc)
    with pytest.raises((AssertionError, ValueError), match=message):
        load_model(doc, "V1Deployment")


def test_deployment_is_hardened_and_probed() -> None:
    doc = k8s_manifests(_version(), K8sOptions(image="img:1"))["deployment.yaml"]
    deployment = load_model(doc, "V1Deployment")
    pod = deployment.spec.template.spec
    (container,) = pod.containers
    assert container.image == "img:1"
    assert container.readiness_probe.http_get.path == "/v2/health/ready"
    assert container.liveness_probe.http_get.path == "/v2/health/live"
    assert container.startup_probe.http_get.path == "/v2/health/live"
    assert container.security_context.read_only_root_filesystem is True
    assert container.security_context.allow_privilege_escalation is False
    assert container.security_context.capabilities.drop == ["ALL"]
    assert pod.security_context.run_as_non_root is True
    assert pod.security_context.run_as_user == 10001
    assert container.resources.requests == {"cpu": "500m", "memory": "512Mi"}
    assert container.resources.limits == {"cpu": "2", "memory": "2Gi"}
    mounts = {m.mount_path: m.name for m in container.volume_mounts}
    assert set(mounts) == {"/var/lib/modelyard", "/tmp"}
    assert {v.name for v in pod.volumes if v.empty_dir is not None} == set(mounts.values())
    annotations = deployment.spec.template.metadata.annotations
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": "8080",
                           "prometheus.io/path": "/metrics"}
    env = {e.name: e.value for e in container.env}
    assert env["MODELYARD_HOME"] == "/var/lib/modelyard"
    assert container.args == ["--port", "8080"]
    # Selectors never name the version: a new version rolls out under the same Deployment.
    assert deployment.spec.selector.match_labels == {
        "app.kubernetes.io/name": "modelyard", "app.kubernetes.io/instance": "fraud"}
    assert deployment.metadata.annotations["modelyard.io/model"] == "models:/fraud/3"


def test_service_hpa_and_pdb_point_at_the_deployment() -> None:
    docs = k8s_manifests(_version(), K8sOptions(replicas=3, grpc=True))
    deployment = load_model(docs["deployment.yaml"], "V1Deployment")
    service = load_model(docs["service.yaml"], "V1Service")
    hpa = load_model(docs["hpa.yaml"], "V2HorizontalPodAutoscaler")
    pdb = load_model(docs["pdb.yaml"], "V1PodDisruptionBudget")
    selector = deployment.spec.selector.match_labels
    assert service.spec.selector == selector
    assert pdb.spec.selector.match_labels == selector
    assert {p.name: (p.port, p.target_port) for p in service.spec.ports} == {
        "http": (80, "http"), "grpc": (8081, "grpc")}
    container_ports = {p.name for p in deployment.spec.template.spec.containers[0].ports}
    assert container_ports == {"http", "grpc"}
    assert hpa.spec.scale_target_ref.name == deployment.metadata.name
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (3, 12)
    assert hpa.spec.metrics[0].resource.target.average_utilization == 70
    assert pdb.spec.max_unavailable == 1


@pytest.mark.parametrize(
    ("name", "resource"),
    [("fraud", "modelyard-fraud"), ("Fraud_Detector.v2", "modelyard-fraud-detector-v2"),
     ("x" * 120, "modelyard-" + "x" * 42)],
    ids=["plain", "needs-escaping", "too-long"],
)
def test_names_are_dns_labels(name: str, resource: str) -> None:
    docs = k8s_manifests(_version(name))
    for doc in docs.values():
        assert doc["metadata"]["name"] == resource
        assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", resource)
        for value in doc["metadata"]["labels"].values():
            assert re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61}[A-Za-z0-9]|[A-Za-z0-9])",
                                value)


@pytest.mark.parametrize(
    ("options", "message"),
    [(K8sOptions(replicas=0), "--replicas must be at least 1"),
     (K8sOptions(replicas=3, max_replicas=2), "must be at least --replicas"),
     (K8sOptions(port=0), "port must be"),
     (K8sOptions(target_cpu_percent=150), "CPU target")],
    ids=["no-replicas", "max-below-min", "bad-port", "bad-cpu-target"],
)
def test_impossible_options_are_refused(options: K8sOptions, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        k8s_manifests(_version(), options)


# -- KServe -------------------------------------------------------------------------------------
# From the InferenceService CRD (serving.kserve.io/v1beta1): a predictor is a PodSpec plus the
# component extension fields below (plus per-framework and ``model`` specs, unused here).
_EXTENSION: dict[str, Any] = {
    "minReplicas": int, "maxReplicas": int, "scaleTarget": int,
    "scaleMetric": ("cpu", "memory", "concurrency", "rps"), "containerConcurrency": int,
    "timeout": int, "canaryTrafficPercent": int, "logger": dict, "batcher": dict,
    "labels": dict, "annotations": dict, "deploymentStrategy": dict,
}
_FRAMEWORKS = {"model", "sklearn", "xgboost", "lightgbm", "onnx", "pytorch", "tensorflow",
               "triton", "pmml", "paddle", "huggingface"}


def check_inference_service(doc: dict[str, Any]) -> None:
    """The InferenceService schema: envelope, spec, predictor extension and pod fields."""
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}
    assert doc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert doc["kind"] == "InferenceService"
    load_model(doc["metadata"], "V1ObjectMeta")
    assert set(doc["spec"]) <= {"predictor", "transformer", "explainer"}
    predictor = dict(doc["spec"]["predictor"])
    for key in set(predictor) & set(_EXTENSION):
        want = _EXTENSION[key]
        value = predictor.pop(key)
        if isinstance(want, tuple):
            assert value in want, f"predictor.{key}: {value!r} not in {want}"
        else:
            ok = isinstance(value, want) and not isinstance(value, bool)
            assert ok, f"predictor.{key}: expected {want.__name__}, got {value!r}"
    assert not set(predictor) & _FRAMEWORKS, "a custom container predictor has no model spec"
    pod = load_model(predictor, "V1PodSpec")  # the rest must be PodSpec fields
    (container,) = pod.containers
    assert container.name == "kserve-container"
    # Knative serves one port, and probes may name only that one.
    (port,) = container.ports
    for probe in (container.readiness_probe, container.liveness_probe):
        assert probe.http_get.port == port.container_port


@pytest.mark.parametrize("options", OPTIONS[:1] + OPTIONS[2:], ids=["defaults", "one-replica"])
def test_kserve_inference_service_matches_the_crd(options: K8sOptions) -> None:
    docs = kserve_manifests(_version(), options)
    assert list(docs) == ["inferenceservice.yaml"]
    service = docs["inferenceservice.yaml"]
    check_inference_service(service)
    predictor = service["spec"]["predictor"]
    assert predictor["minReplicas"] == options.replicas
    container = predictor["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert service["metadata"]["annotations"]["modelyard.io/protocol"] == "v2"
    assert service["metadata"]["annotations"][
        "serving.kserve.io/enable-prometheus-scraping"] == "true"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [(lambda p: p.update(minReplicas="1"), "expected int"),
     (lambda p: p.update(scaleMetric="latency"), "not in"),
     (lambda p: p.update(sklearn={"storageUri": "s3://x"}), "no model spec"),
     (lambda p: p.update(replicas=2), "unknown field")],
    ids=["wrong-type", "bad-enum", "framework-spec", "unknown-field"],
)
def test_the_kserve_schema_rejects_broken_services(mutate: Any, message: str) -> None:
    service = kserve_manifests(_version())["inferenceservice.yaml"]
    mutate(service["spec"]["predictor"])
    with pytest.raises(AssertionError, match=message):
        check_inference_service(service)


def test_written_yaml_reads_back(tmp_path: Path) -> None:
    docs = k8s_manifests(_version(), K8sOptions(image="img:1"))
    paths = write_manifests(docs, tmp_path / "k8s", source="models:/fraud/3")
    assert sorted(p.name for p in paths) == sorted(docs)
    for path in paths:
        text = path.read_text()
        assert text.startswith("# Written by 'modelyard export k8s' for models:/fraud/3.")
        assert yaml.safe_load(text) == docs[path.name]
