"""API keys on a real server over a real registry: every REST route (the OpenAPI document's,
plus /openapi.json and /v2/null) and every gRPC method, called as every kind of caller, answer
as the table below says; revocation takes effect within the refresh interval; rate limits
answer 429 / RESOURCE_EXHAUSTED with Retry-After."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from tritonclient.utils import InferenceServerException

from modelyard import Client
from modelyard.registry.sql.audit import SqlAuditLog
from modelyard.registry.sql.key_store import SqlKeyStore
from modelyard.security.keys import issue_key
from modelyard.serving.auth import build_guard
from modelyard.serving.grpc.server import InferenceServicer
from modelyard.serving.http.openapi import openapi_document
from modelyard.serving.server import Server, build_app
from modelyard.settings import DeploymentSettings, SecuritySettings, ServingSettings, Settings
from modelyard.testing.server import running_server

pytestmark = pytest.mark.timeout(120)

REFRESH_S = 0.2
ROW = [5.1, 3.5, 1.4, 0.2]

# Who calls. "wrong-model" is an admin key limited to a model this server does not serve, so
# that every 403 it gets is for the model, never for the role.
ROLES = {"viewer": 1, "predictor": 2, "deployer": 3, "admin": 4, "wrong-model": 4}
UNAUTHENTICATED = ("no-key", "malformed", "unknown", "wrong-secret", "expired", "revoked")
CALLERS = (*UNAUTHENTICATED, *ROLES)

PUBLIC, VIEW, PREDICT, DEPLOY = 0, 1, 2, 3


class _Sink:
    """Takes inference records and feedback labels, keeps nothing."""

    def emit(self, record: Any) -> None:
        return None

    def add_feedback(self, model: str, table: Any) -> None:
        return None


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # as in the OpenAPI document
    needs: int  # PUBLIC, VIEW, PREDICT or DEPLOY
    model: bool  # touches one model (a model-limited key is checked against it)
    ok: frozenset[int]  # what an allowed caller gets
    body: Any = None

    @property
    def path(self) -> str:
        # Load and unload touch a spare model, so that the others keep serving.
        name = "spare" if "/repository/models/" in self.template else "iris"
        return self.template.replace("{name}", name).replace("{version}", "1")


_INFER = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": ROW}]}
_OK = frozenset({200})

ROUTES = [
    Route("GET", "/v2/health/live", PUBLIC, False, _OK),
    Route("GET", "/v2/health/ready", PUBLIC, False, _OK),
    Route("GET", "/v2", VIEW, False, _OK),
    Route("GET", "/v2/models/{name}", VIEW, True, _OK),
    Route("GET", "/v2/models/{name}/versions/{version}", VIEW, True, _OK),
    Route("GET", "/v2/models/{name}/ready", VIEW, True, _OK),
    Route("GET", "/v2/models/{name}/versions/{version}/ready", VIEW, True, _OK),
    Route("POST", "/v2/models/{name}/infer", PREDICT, True, _OK, _INFER),
    Route("POST", "/v2/models/{name}/versions/{version}/infer", PREDICT, True, _OK, _INFER),
    Route("POST", "/v2/models/{name}/feedback", DEPLOY, True, frozenset({202}),
          {"id": "r1", "label": 0}),
    # iris has no rollout here: an allowed caller gets the 404 that says so.
    Route("GET", "/v2/models/{name}/rollout", VIEW, True, frozenset({404})),
    Route("POST", "/v2/repository/index", VIEW, False, _OK),
    # Callers unload and load the spare model in turn: a second unload finds nothing (404).
    Route("POST", "/v2/repository/models/{name}/unload", DEPLOY, True, frozenset({200, 404})),
    Route("POST", "/v2/repository/models/{name}/load", DEPLOY, True, _OK),
    Route("POST", "/invocations", PREDICT, True, _OK, {"inputs": [ROW]}),  # the default model
    Route("POST", "/models/{name}/invocations", PREDICT, True, _OK, {"inputs": [ROW]}),
    Route("GET", "/ping", VIEW, False, _OK),
    Route("GET", "/health", VIEW, False, _OK),
    Route("GET", "/version", VIEW, False, _OK),
    Route("POST", "/v1/models/{name}:predict", PREDICT, True, _OK, {"instances": [ROW]}),
    Route("GET", "/v1/models/{name}", VIEW, True, _OK),
    Route("POST", "/predictions/{name}", PREDICT, True, _OK, [ROW]),
    Route("POST", "/predictions/{name}/{version}", PREDICT, True, _OK, [ROW]),
    Route("GET", "/metrics", VIEW, False, _OK),
    Route("GET", "/openapi.json", VIEW, False, _OK),
    Route("POST", "/v2/null", PREDICT, False, _OK, {}),
]


def expected(caller: str, needs: int, model: bool) -> int | None:
    """None: allowed; else the status the caller must get."""
    if needs == PUBLIC:
        return None
    if caller in UNAUTHENTICATED:
        return 401
    if ROLES[caller] < needs:
        return 403
    if caller == "wrong-model" and model:
        return 403
    return None


@dataclass
class Yard:
    url: str
    grpc_url: str
    server: Server
    client: Client
    store: SqlKeyStore
    tokens: dict[str, str | None]


def _server(client: Client, security: SecuritySettings, store: SqlKeyStore) -> Server:
    serving = ServingSettings(
        deployments=[DeploymentSettings(model="models:/iris@production"),
                     DeploymentSettings(model="models:/spare@production")],
        grpc_port=0, alias_poll_s=REFRESH_S, null_route=True)
    guard = build_guard(security, store, host="127.0.0.1", refresh_s=REFRESH_S)
    return build_app(client, serving, sink=_Sink(), version="test", wait_for_models=True,
                     guard=guard)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    home = tmp_path_factory.mktemp("auth") / "home"
    X, y = load_iris(return_X_y=True)
    with Client(Settings(home=home, user="tester")) as client:
        model = LogisticRegression(max_iter=1000).fit(X, y)
        client.register(model, "iris", data=np.asarray(X), alias="production")
        client.register(model, "spare", data=np.asarray(X), alias="production")
        yield client


@pytest.fixture(scope="module")
def yard(registry: Client) -> Iterator[Yard]:
    store = SqlKeyStore(registry.store.engine)
    now = time.time()
    tokens: dict[str, str | None] = {"no-key": None, "malformed": "opensesame"}
    for role in ("viewer", "predictor", "deployer", "admin"):
        tokens[role] = store.create(name=role, role=role, actor="tester").token
    tokens["wrong-model"] = store.create(name="other-only", role="admin", models=["other"],
                                         actor="tester").token
    tokens["expired"] = store.create(name="old", role="admin", actor="tester",
                                     expires_at=now - 1).token
    revoked = store.create(name="gone", role="admin", actor="tester")
    store.revoke(revoked.record.key_id, actor="tester")
    tokens["revoked"] = revoked.token
    tokens["unknown"] = issue_key(name="x", role="admin", created_by="t", now=now).token
    viewer = str(tokens["viewer"])
    tokens["wrong-secret"] = viewer[:-3] + ("abc" if not viewer.endswith("abc") else "xyz")
    server = _server(registry, SecuritySettings(auth="on"), store)
    with running_server(server.app) as url:
        yield Yard(url, f"127.0.0.1:{server.grpc_port}", server, registry, store, tokens)


def test_the_table_covers_every_documented_route() -> None:
    documented = {(method.upper(), path)
                  for path, item in openapi_document("x")["paths"].items() for method in item}
    tested = {(r.method, r.template) for r in ROUTES}
    assert tested - documented == {("GET", "/openapi.json"), ("POST", "/v2/null")}
    assert documented <= tested


@pytest.mark.parametrize("caller", CALLERS)
def test_rest_route_matrix(yard: Yard, caller: str) -> None:
    token = yard.tokens[caller]
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    wrong: list[str] = []
    with httpx.Client(base_url=yard.url, headers=headers, timeout=10) as http:
        for route in ROUTES:
            kwargs: dict[str, Any] = {} if route.body is None else {"json": route.body}
            r = http.request(route.method, route.path, **kwargs)
            want = expected(caller, route.needs, route.model)
            if want is None and r.status_code not in route.ok:
                wrong.append(f"{route.method} {route.path}: {r.status_code} {r.text[:200]}")
            elif want is not None and r.status_code != want:
                wrong.append(f"{route.method} {route.path}: {r.status_code}, expected {want}")
            elif want is not None:
                assert r.json()["error"]
                assert token is None or token not in r.text
                assert (r.headers.get("www-authenticate") == 'Bearer realm="modelyard"') is (
                    want == 401)
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(("headers", "status"), [
    ({"X-API-Key": "{predictor}"}, 200),
    ({"Authorization": "bearer {predictor}"}, 200),
    ({"Authorization": "Basic {predictor}"}, 401),
    ({"Authorization": "Bearer {viewer}"}, 403),
    ({"Authorization": "Bearer {viewer}", "X-API-Key": "{predictor}"}, 403),
], ids=["x-api-key", "lowercase-scheme", "basic-scheme", "viewer", "bearer-wins"])
def test_header_forms(yard: Yard, headers: dict[str, str], status: int) -> None:
    filled = {k: v.format(**yard.tokens) for k, v in headers.items()}
    r = httpx.post(f"{yard.url}/v2/models/iris/infer", json=_INFER, headers=filled)
    assert r.status_code == status, r.text


def test_messages_say_what_to_do(yard: Yard) -> None:
    none = httpx.get(f"{yard.url}/v2")
    assert none.json() == {"error": (
        "This server requires an API key. Send it as 'Authorization: Bearer <key>' or "
        "'X-API-Key: <key>'. Create a key with: modelyard keys create --name NAME --role "
        "predictor (it prints the key once).")}
    viewer = httpx.post(f"{yard.url}/v2/models/iris/infer", json=_INFER,
                        headers={"X-API-Key": str(yard.tokens["viewer"])})
    assert "has role 'viewer'; model.infer needs role 'predictor' or above" in (
        viewer.json()["error"])
    limited = httpx.get(f"{yard.url}/v2/models/iris",
                        headers={"X-API-Key": str(yard.tokens["wrong-model"])})
    assert "may use the models other only, not 'iris'" in limited.json()["error"]


def test_denied_requests_do_not_reach_the_model(yard: Yard) -> None:
    assert httpx.post(f"{yard.url}/v2/models/iris/infer", json=_INFER,
                      headers={"X-API-Key": str(yard.tokens["predictor"])}).status_code == 200
    before = httpx.get(f"{yard.url}/metrics",
                       headers={"X-API-Key": str(yard.tokens["viewer"])}).text
    for _ in range(3):
        assert httpx.post(f"{yard.url}/v2/models/iris/infer", json=_INFER).status_code == 401
    after = httpx.get(f"{yard.url}/metrics",
                      headers={"X-API-Key": str(yard.tokens["viewer"])}).text

    def infer_count(text: str) -> list[str]:
        return [line for line in text.splitlines()
                if line.startswith("modelyard_requests_total") and 'model="iris"' in line]

    assert infer_count(before)
    assert infer_count(before) == infer_count(after)


def test_revocation_and_new_keys_within_the_refresh_interval(yard: Yard) -> None:
    issued = yard.store.create(name="short-lived", role="predictor", actor="tester")
    headers = {"Authorization": f"Bearer {issued.token}"}

    def status() -> int:
        return httpx.post(f"{yard.url}/v2/models/iris/infer", json=_INFER,
                          headers=headers).status_code

    assert _within(lambda: status() == 200, 10 * REFRESH_S) < 10 * REFRESH_S
    yard.store.revoke(issued.record.key_id, actor="tester")
    took = _within(lambda: status() == 401, 10 * REFRESH_S)
    assert took < 10 * REFRESH_S  # a few refresh intervals at most, on a busy machine
    body = httpx.post(f"{yard.url}/v2/models/iris/infer", json=_INFER, headers=headers).json()
    assert body["error"].startswith(f"The API key {issued.record.key_id} was revoked.")
    actions = [e.action for e in SqlAuditLog(yard.store.engine).entries(action="key.")
               if e.target == f"key:{issued.record.key_id}"]
    assert actions == ["key.create", "key.revoke"]


def _within(condition: Callable[[], bool], limit: float) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > limit:
            return float("inf")
        time.sleep(0.02)
    return time.monotonic() - started


# -- gRPC ---------------------------------------------------------------------------------------

GrpcCall = Callable[[grpcclient.InferenceServerClient, dict[str, str]], Any]


def _infer(client: grpcclient.InferenceServerClient, headers: dict[str, str]) -> Any:
    inp = grpcclient.InferInput("input", [1, 4], "FP64")
    inp.set_data_from_numpy(np.asarray([ROW], dtype=np.float64))
    return client.infer("iris", [inp], headers=headers)


# method -> (needs, touches a model, the call)
GRPC_METHODS: dict[str, tuple[int, bool, GrpcCall]] = {
    "ServerLive": (PUBLIC, False, lambda c, h: c.is_server_live(headers=h)),
    "ServerReady": (PUBLIC, False, lambda c, h: c.is_server_ready(headers=h)),
    "ServerMetadata": (VIEW, False, lambda c, h: c.get_server_metadata(headers=h)),
    "ModelReady": (VIEW, True, lambda c, h: c.is_model_ready("iris", headers=h)),
    "ModelMetadata": (VIEW, True, lambda c, h: c.get_model_metadata("iris", headers=h)),
    "ModelInfer": (PREDICT, True, _infer),
    "RepositoryIndex": (VIEW, False, lambda c, h: c.get_model_repository_index(headers=h)),
    "RepositoryModelUnload": (DEPLOY, True, lambda c, h: c.unload_model("spare", headers=h)),
    "RepositoryModelLoad": (DEPLOY, True, lambda c, h: c.load_model("spare", headers=h)),
}
_GRPC_STATUS = {401: "StatusCode.UNAUTHENTICATED", 403: "StatusCode.PERMISSION_DENIED"}


def test_the_grpc_table_covers_every_method() -> None:
    served = {name for name in vars(InferenceServicer) if name[:1].isupper()}
    assert served == set(GRPC_METHODS)


@pytest.mark.parametrize("caller", CALLERS)
def test_grpc_method_matrix(yard: Yard, caller: str) -> None:
    token = yard.tokens[caller]
    # tritonclient sends headers as gRPC metadata; the key goes both ways across callers.
    headers = {} if token is None else (
        {"authorization": f"Bearer {token}"} if caller != "predictor" else {"x-api-key": token})
    wrong: list[str] = []
    client = grpcclient.InferenceServerClient(yard.grpc_url)
    try:
        for method, (needs, model, call) in GRPC_METHODS.items():
            want = expected(caller, needs, model)
            try:
                call(client, headers)
                got = "OK"
            except InferenceServerException as exc:
                got = str(exc.status())
                if token is not None and token in str(exc.message()):
                    wrong.append(f"{method}: the message repeats the key")
            if want is None and got != "OK" and not (
                    method == "RepositoryModelUnload" and got == "StatusCode.NOT_FOUND"):
                wrong.append(f"{method}: {got}")
            elif want is not None and got != _GRPC_STATUS[want]:
                wrong.append(f"{method}: {got}, expected {_GRPC_STATUS[want]}")
    finally:
        client.close()
    assert not wrong, "\n".join(wrong)


# -- rate limits ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(registry: Client) -> Iterator[Yard]:
    store = SqlKeyStore(registry.store.engine)
    tokens: dict[str, str | None] = {
        name: store.create(name=f"rate-{name}", role="predictor", actor="tester").token
        for name in ("a", "b", "grpc")}
    security = SecuritySettings(auth="on", rate_limit_per_s=2.0, rate_limit_burst=3)
    server = _server(registry, security, store)
    with running_server(server.app) as url:
        yield Yard(url, f"127.0.0.1:{server.grpc_port}", server, registry, store, tokens)


def test_rate_limit_answers_429_with_retry_after(limited: Yard) -> None:
    def infer(who: str) -> httpx.Response:
        return httpx.post(f"{limited.url}/v2/models/iris/infer", json=_INFER,
                          headers={"X-API-Key": str(limited.tokens[who])})

    statuses = [infer("a").status_code for _ in range(3)]
    over = infer("a")
    assert statuses == [200, 200, 200]
    assert over.status_code == 429
    assert over.headers["retry-after"] == "1"
    assert over.json()["error"].startswith("Too many requests from API key ")
    assert "the limit is 2 requests/s (bursts of 3)" in over.json()["error"]
    assert infer("b").status_code == 200  # each key has its own bucket
    assert httpx.get(f"{limited.url}/v2/health/live").status_code == 200  # probes: never
    time.sleep(0.6)  # one token back at 2/s
    assert infer("a").status_code == 200


def test_grpc_rate_limit_is_resource_exhausted(limited: Yard) -> None:
    client = grpcclient.InferenceServerClient(limited.grpc_url)
    headers = {"x-api-key": str(limited.tokens["grpc"])}
    try:
        for _ in range(3):
            _infer(client, headers)
        with pytest.raises(InferenceServerException) as info:
            _infer(client, headers)
    finally:
        client.close()
    assert info.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
    assert "Retry in 1 s" in str(info.value.message())
