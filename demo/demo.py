"""The modelyard end-to-end demo, on embedded defaults (SQLite and local files).

Run it with `make demo`. Every capability that lands extends this script:
today it covers the registry (register with lineage and a reference profile, aliases, loading
with integrity checks, signature enforcement, rollback), the CLI, the inference server (three
protocols, hot swap), monitoring (inference log, late labels, drift, data quality, alerts
to a webhook, objectives, an HTML report, data audits), security (API keys with roles,
signed models, the audit log, scans), running everywhere (batch, ONNX, containers, Kubernetes)
and the closed loop (a drift alert triggers a retraining pipeline, gates, a canary rollout the
server promotes on its own, a bad candidate refused).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

HOME = Path(os.environ.get("MODELYARD_DEMO_HOME", Path(__file__).parent / ".home")).resolve()
console = Console()


def step(title: str) -> None:
    console.rule(f"[bold cyan]{title}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(http: Any, seconds: float, what: str = "the server",
                path: str = "/v2/health/ready") -> None:
    """Poll ``path`` until the server answers 200, or stop the demo."""
    import httpx

    deadline = time.perf_counter() + seconds
    while True:
        try:
            if http.get(path).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.perf_counter() > deadline:
            raise SystemExit(f"{what} did not become ready within {seconds:g} s")
        time.sleep(0.05)


DRIFTED = ["mean radius", "mean perimeter", "mean area", "worst radius", "worst perimeter",
           "worst area", "mean texture", "worst texture"]


def serve_and_swap(cli: list[str], X_val: Any, y_val: Any) -> None:
    """Start `modelyard serve`, call it with three protocols, move the alias, watch it swap,
    then send traffic from a world that changed and its labels, which arrive later."""
    import httpx
    import tritonclient.grpc as grpcclient

    port, grpc_port = _free_port(), _free_port()
    cmd = [*cli, "serve", "models:/cancer@production", "--port", str(port),
           "--grpc-port", str(grpc_port)]
    console.print("$ modelyard " + " ".join(cmd[3:]))
    started = time.perf_counter()
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=10) as http:
            _wait_ready(http, 60)
            console.print(f"ready in {time.perf_counter() - started:.2f} s")
            rows = X_val.head(2)
            body = {"inputs": [{"name": "input", "shape": list(rows.shape), "datatype": "FP64",
                                "data": rows.to_numpy().ravel().tolist()}]}
            answer = http.post("/v2/models/cancer/infer", json=body).json()
            outputs = {o["name"]: o["data"] for o in answer["outputs"]}
            console.print(f"OIP v2 REST  -> version {answer['model_version']}: predict "
                          f"{outputs['predict']}")
            mlflow = http.post("/invocations",
                               json={"dataframe_split": rows.to_dict(orient="split")}).json()
            console.print(f"MLflow /invocations -> {mlflow['predictions']}")
            grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
            tensor = grpcclient.InferInput("input", list(rows.shape), "FP64")
            tensor.set_data_from_numpy(rows.to_numpy())
            result = grpc.infer("cancer", [tensor])
            console.print(f"OIP v2 gRPC  -> predict {result.as_numpy('predict').tolist()}")
            grpc.close()
            bad = http.post("/v2/models/cancer/infer", json={"inputs": [{
                "name": "input", "shape": [1, 29], "datatype": "FP64", "data": [0.0] * 29}]})
            console.print(f"[yellow]bad input -> {bad.status_code}:[/] {bad.json()['error']}")

            console.print("$ modelyard alias set cancer production 2   (from another process)")
            subprocess.run([*cli, "alias", "set", "cancer", "production", "2", "--reason",
                            "demo hot swap"], check=True, stdout=subprocess.DEVNULL)
            swap_started = time.perf_counter()
            version = answer["model_version"]
            while version != "2" and time.perf_counter() - swap_started < 30:
                version = http.post("/v2/models/cancer/infer", json=body).json()[
                    "model_version"]
            console.print(f"the server now answers with version {version}, swapped "
                          f"{time.perf_counter() - swap_started:.1f} s after the alias moved")
            metrics = [line for line in http.get("/metrics").text.splitlines()
                       if line.startswith("modelyard_requests_total")]
            console.print("/metrics: " + "; ".join(metrics[:3]))

            step("9. Production traffic drifts; ground truth arrives later")
            live = X_val.copy()
            for column in DRIFTED:  # the world changed: these features grew by 1.5 std
                live[column] = live[column] + 1.5 * X_val[column].std()
            labels = []
            for i, start in enumerate(range(0, len(live), 10)):
                chunk = live.iloc[start:start + 10]
                request = {"id": f"demo-{i}", "inputs": [
                    {"name": c, "shape": [len(chunk)], "datatype": "FP64",
                     "data": chunk[c].tolist()} for c in chunk.columns]}
                assert http.post("/v2/models/cancer/infer", json=request).status_code == 200
                labels += [{"id": f"demo-{i}", "row": r, "label": int(y_val.iloc[start + r])}
                           for r in range(len(chunk))]
            console.print(f"sent {len(live)} rows in {i + 1} requests, {len(DRIFTED)} "
                          "features shifted by 1.5 standard deviations; every prediction "
                          "goes to the inference log off the request path")
            answer = http.post("/v2/models/cancer/feedback", json=labels).json()
            console.print(f"POST /v2/models/cancer/feedback -> {answer} (labels joined by "
                          "request id)")
            logged = [line for line in http.get("/metrics").text.splitlines()
                      if line.startswith("modelyard_inference_log_")
                      and not line.startswith("#")]
            console.print("/metrics: " + "; ".join(logged[:3]))
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
        console.print(f"SIGTERM -> the server drained, flushed its inference log and exited "
                      f"with code {code}")


class _Receiver:
    """A webhook receiver on loopback: stands in for Slack or PagerDuty."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.alerts: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                import json

                body = self.rfile.read(int(self.headers["content-length"]))
                outer.alerts.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def watch(cli: list[str]) -> None:
    """Monitoring: drift, accuracy from the late labels, alerts to a webhook, a report."""
    receiver = _Receiver()
    config = HOME / "monitoring.yaml"
    config.write_text(f"""\
window: 1h
rules:
  - name: cancer-drift
    model: cancer
    condition: "drift.share > 0.2"
    severity: critical
    sinks: [team]
  - name: cancer-accuracy
    model: cancer
    condition: "accuracy < 0.9"
    sinks: [team]
sinks:
  team:
    type: webhook
    url: {receiver.url}
    secret: demo-secret
objectives:
  cancer:
    - "accuracy >= 0.9"
    - "latency_p99_ms <= 50"
    - "error_rate <= 0.01"
""")
    step("10. Monitor: drift, data quality, accuracy from late labels, alerts, objectives")
    console.print(f"$ modelyard monitor run cancer --config {config.name}")
    subprocess.run([*cli, "monitor", "run", "cancer", "--config", str(config)], check=True)
    for alert in receiver.alerts:
        console.print(f"[bold red]webhook received[/] {alert['kind']}: "
                      f"{escape(alert['message'])}")
    console.print("$ modelyard monitor status cancer")
    subprocess.run([*cli, "monitor", "status", "cancer", "--config", str(config)], check=True)
    report = HOME / "cancer-report.html"
    subprocess.run([*cli, "monitor", "report", "cancer", "--config", str(config), "-o",
                    str(report)], check=True)
    console.print(f"open {report} in a browser: distributions, drift, quality, trends")
    receiver.server.shutdown()


def secure(cli: list[str], X_val: Any) -> None:
    """API keys with roles, signed models, the audit log, scans."""
    import httpx

    step("12. Secure it: API keys with roles, signed models, a tamper-evident audit log, scans")
    key = subprocess.run([*cli, "keys", "create", "--name", "demo-client", "--role", "predictor",
                          "--models", "cancer", "--expires", "90d"], check=True,
                         capture_output=True, text=True).stdout.strip()
    console.print(f"$ modelyard keys create --name demo-client --role predictor -> "
                  f"{key[:20]}... (only a salted hash is stored)")
    keys_dir = HOME / "signing"
    subprocess.run([*cli, "sign", "--generate-key", str(keys_dir)], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([*cli, "sign", "models:/cancer/2", "--key", str(keys_dir / "private.pem")],
                   check=True)
    subprocess.run([*cli, "verify", "models:/cancer/2", "--trusted",
                    str(keys_dir / "public.pem")], check=True)
    port = _free_port()
    env = {**os.environ, "MODELYARD_SECURITY__REQUIRE_SIGNED": "true",
           "MODELYARD_SECURITY__TRUSTED_KEYS": f'["{keys_dir / "public.pem"}"]'}
    server = subprocess.Popen([*cli, "serve", "models:/cancer@production", "--port", str(port),
                               "--no-grpc", "--no-log"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            _wait_ready(http, 60, "the secured server")
            rows = X_val.head(1)
            body = {"inputs": [{"name": c, "shape": [1], "datatype": "FP64",
                                "data": rows[c].tolist()} for c in rows.columns]}
            anonymous = http.post("/v2/models/cancer/infer", json=body)
            allowed = http.post("/v2/models/cancer/infer", json=body,
                                headers={"Authorization": f"Bearer {key}"})
            denied = http.post("/v2/repository/models/cancer/unload",
                               headers={"Authorization": f"Bearer {key}"})
            console.print(f"signed v2 serves (require_signed on); no key -> "
                          f"{anonymous.status_code}, predictor key -> {allowed.status_code}, "
                          f"predictor unloading a model -> {denied.status_code}")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    console.print("$ modelyard audit --model cancer --limit 5")
    subprocess.run([*cli, "audit", "--model", "cancer", "--limit", "5"], check=True)
    subprocess.run([*cli, "audit", "verify"], check=True)
    console.print("$ modelyard scan models:/cancer@production")
    subprocess.run([*cli, "scan", "models:/cancer@production"], check=True)


def everywhere(cli: list[str], X_val: Any) -> None:
    """The same model as a batch job, an offline ONNX bundle, a container and Kubernetes."""
    step("13. Run it everywhere: batch scoring, ONNX for the edge, a container, Kubernetes")
    batch_in, batch_out = HOME / "to-score.parquet", HOME / "scored.parquet"
    X_val.reset_index(names="id").to_parquet(batch_in)
    console.print("$ modelyard batch models:/cancer@production to-score.parquet "
                  "-o scored.parquet --id-column id")
    subprocess.run([*cli, "batch", "models:/cancer@production", str(batch_in), "-o",
                    str(batch_out), "--id-column", "id"], check=True)
    console.print("$ modelyard export onnx models:/cancer/2")
    subprocess.run([*cli, "export", "onnx", "models:/cancer/2"], check=True)
    bundle = HOME / "cancer-edge.zip"
    subprocess.run([*cli, "export", "bundle", "models:/cancer/3", "-o", str(bundle)],
                   check=True)
    import zipfile

    edge = HOME / "edge"
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(edge)  # our own bundle, just written
    X_val.head(3).to_json(HOME / "edge-input.jsonl", orient="records", lines=True)
    console.print("$ python edge/predict.py edge-input.jsonl   (numpy + onnxruntime only)")
    subprocess.run([sys.executable, str(edge / "predict.py"), str(HOME / "edge-input.jsonl")],
                   check=True)
    subprocess.run([*cli, "export", "container", "models:/cancer@production", "-o",
                    str(HOME / "container")], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*cli, "export", "k8s", "models:/cancer@production", "-o",
                    str(HOME / "k8s")], check=True, stdout=subprocess.DEVNULL)
    files = sorted(p.name for p in (HOME / "container").iterdir()) + sorted(
        f"k8s/{p.name}" for p in (HOME / "k8s").iterdir())
    console.print("container context and manifests: " + ", ".join(files))


TRAIN = """\
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def fit(train_df, params):
    X, y = train_df.drop(columns=["target"]), train_df["target"]
    if params.get("shuffle_labels"):  # the deliberately bad candidate
        y = y.sample(frac=1.0, random_state=0).to_numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=params.get("C", 1.0),
                                                               max_iter=1000))
    return model.fit(X, y)
"""

PIPELINE = """\
name: cancer-retrain
model: cancer
data: {{path: "new-data/*.parquet"}}
target: target
train: "loop_train:fit"
params: {params}
split: {{kind: random, test_size: 0.3, seed: 0}}
gates:
  metrics:
    accuracy: {{min: 0.9, min_delta: 0.0}}
    roc_auc: {{min: 0.9}}
  latency_p99_ms: 50
on_pass:
  action: rollout
  mode: canary
  steps: [0.5, 1.0]
  policy: {{min_requests: 40, judge_after: 20}}
triggers:
  alert: [cancer-drift]
  new_data: {{poll_s: 1}}
"""


def close_the_loop(cli: list[str], data: Any) -> None:
    """The drift alert starts a retraining pipeline; the candidate passes its gates and a
    canary rollout promotes it with nobody running a command; a bad candidate is refused."""
    import json

    import httpx

    step("14. Close the loop: the drift alert retrains, the gate passes, a canary promotes")
    loop = HOME / "loop"
    (loop / "new-data").mkdir(parents=True)
    (loop / "loop_train.py").write_text(TRAIN)
    # New labelled data from the changed world: the same shift as the drifted traffic.
    world = data.data.copy()
    for column in DRIFTED:
        world[column] = world[column] + 1.5 * data.data[column].std()
    world.assign(target=data.target).to_parquet(loop / "new-data" / "week-1.parquet")
    good = loop / "pipeline.yaml"
    good.write_text(PIPELINE.format(params="{C: 1.0}"))
    console.print(f"{good.name}: data new-data/*.parquet, train loop_train:fit, gates accuracy "
                  ">= 0.9 and >= the champion's, p99 <= 50 ms; on pass: canary 50% -> 100%")
    console.print("$ modelyard pipeline watch pipeline.yaml --max-runs 1   (the drift alert "
                  "from step 10 is firing)")
    subprocess.run([*cli, "pipeline", "watch", str(good), "--poll", "0.5", "--max-runs", "1",
                    "--timeout", "2m"], check=True, cwd=loop)
    rollout = json.loads(subprocess.run(
        [*cli, "rollout", "status", "cancer", "--json"], check=True, capture_output=True,
        text=True).stdout)["rollout"]
    console.print(f"rollout #{rollout['id']}: version {rollout['challenger']} against "
                  f"production version {rollout['champion']}, {rollout['weight']:.0%} of the "
                  "traffic first")

    key = subprocess.run([*cli, "keys", "create", "--name", "demo-traffic", "--role",
                          "predictor", "--models", "cancer"], check=True,
                         capture_output=True, text=True).stdout.strip()
    port = _free_port()
    env = {**os.environ, "MODELYARD_SERVING__ALIAS_POLL_S": "0.5"}
    server = subprocess.Popen([*cli, "serve", "models:/cancer@production", "--port", str(port),
                               "--no-grpc"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    live = world.sample(n=len(world), random_state=1)
    answered: dict[str, int] = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10,
                          headers={"Authorization": f"Bearer {key}"}) as http:
            _wait_ready(http, 90)
            deadline = time.perf_counter() + 90
            state, i = "active", 0
            while state == "active":
                if time.perf_counter() > deadline:
                    raise SystemExit("the rollout did not finish within 90 s")
                row = live.iloc[[i % len(live)]]
                i += 1
                body = {"inputs": [{"name": c, "shape": [1], "datatype": "FP64",
                                    "data": row[c].tolist()} for c in row.columns]}
                r = http.post("/v2/models/cancer/infer", json=body)
                assert r.status_code == 200, r.text
                version = r.json()["model_version"]
                answered[version] = answered.get(version, 0) + 1
                if i % 20 == 0:
                    status = http.get("/v2/models/cancer/rollout")
                    if status.status_code == 404:
                        break
                    state = status.json()["rollout"]["state"]
                    time.sleep(0.05)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    console.print(f"sent {sum(answered.values())} requests, all answered: "
                  + ", ".join(f"version {v}: {n}" for v, n in sorted(answered.items()))
                  + "; the server advanced and promoted the canary on its own")
    console.print("$ modelyard alias history cancer   (the last moves, with their reasons)")
    changes = json.loads(subprocess.run([*cli, "alias", "history", "cancer", "--json"],
                                        check=True, capture_output=True, text=True).stdout)
    for c in changes[-4:]:
        console.print(f"  {c['alias']}: {c['from_version']} -> {c['to_version']}  "
                      f"[dim]{escape(c['reason'])}[/]")

    bad = loop / "bad-pipeline.yaml"
    bad.write_text(PIPELINE.format(params="{shuffle_labels: true}").replace(
        "name: cancer-retrain", "name: cancer-bad-candidate"))
    console.print("$ modelyard pipeline run bad-pipeline.yaml   (trained on shuffled labels)")
    rejected = subprocess.run([*cli, "pipeline", "run", str(bad)], check=False, cwd=loop)
    if rejected.returncode != 1:
        raise SystemExit(f"the bad candidate was not rejected (exit {rejected.returncode})")
    console.print(f"exit code {rejected.returncode}: the gate refused the candidate; nothing "
                  "was registered")
    console.print("$ modelyard pipeline runs")
    subprocess.run([*cli, "pipeline", "runs"], check=True)


def dashboard(cli: list[str]) -> None:
    """The web dashboard over everything the demo recorded, opened as a browser would."""
    import re

    import httpx

    step("15. Look at it: the web dashboard")
    key = subprocess.run([*cli, "keys", "create", "--name", "demo-viewer", "--role", "viewer"],
                         check=True, capture_output=True, text=True).stdout.strip()
    port = _free_port()
    ui = subprocess.Popen([*cli, "ui", "--port", str(port)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                          auth=("demo", key)) as http:  # HTTP Basic, the key as password
            _wait_ready(http, 60, "the dashboard", path="/healthz")
            anonymous = httpx.get(f"http://127.0.0.1:{port}/").status_code
            overview = http.get("/")
            page = http.get("/models/cancer")
            audit = http.get("/audit").status_code
            (HOME / "dashboard-cancer.html").write_text(page.text)
    finally:
        ui.send_signal(signal.SIGTERM)
        ui.wait(timeout=30)
    text = page.text
    console.print(f"$ modelyard ui --port {port}: no key -> {anonymous}, viewer key -> "
                  f"{overview.status_code} (/), {page.status_code} (/models/cancer), "
                  f"{audit} (/audit, admin only)")
    drifted = re.search(r"(\d+) features, (\d+) drifted", text)
    n_features, n_drifted = drifted.groups() if drifted else ("?", "?")
    charts = text.count('<figure class="card chart"')
    lines = text.count('<svg class="spark"')
    rows = len(re.findall(r"<td>#\d+</td>", text))
    console.print(f"/models/cancer: {charts} charts, {lines} trend lines, {n_drifted} of "
                  f"{n_features} features drifted, {text.count('>firing<')} alerts firing, "
                  f"{rows} rollouts and retraining runs; saved as "
                  f"{HOME / 'dashboard-cancer.html'}")


def audit(cli: list[str], X_val: Any) -> None:
    step("11. Audit a data file before it reaches the model")
    dirty = X_val.head(50).copy()
    dirty.loc[dirty.index[:5], "mean radius"] = None
    dirty.loc[dirty.index[5:8], "mean area"] = 1e6
    dirty = dirty.drop(columns=["worst symmetry"])
    path = HOME / "incoming.csv"
    dirty.to_csv(path, index=False)
    console.print("$ modelyard data audit incoming.csv --against models:/cancer@production")
    result = subprocess.run([*cli, "data", "audit", str(path), "--against",
                             "models:/cancer@production"], check=False)
    console.print(f"exit code {result.returncode}: the file fails its checks, so a pipeline "
                  "step would stop here")


def main() -> None:
    shutil.rmtree(HOME, ignore_errors=True)
    os.environ["MODELYARD_HOME"] = str(HOME)
    started = time.perf_counter()

    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import modelyard
    from modelyard.errors import IntegrityError, SignatureError

    step("1. Train two candidate models on data scikit-learn ships")
    data = load_breast_cancer(as_frame=True)
    X_train, X_val, y_train, y_val = train_test_split(
        data.data, data.target, test_size=0.3, random_state=0, stratify=data.target)
    logreg = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        X_train, y_train)
    forest = RandomForestClassifier(n_estimators=100, random_state=0).fit(X_train, y_train)

    def metrics(model: object) -> dict[str, float]:
        proba = model.predict_proba(X_val)[:, 1]  # type: ignore[attr-defined]
        return {"accuracy": accuracy_score(y_val, proba > 0.5),
                "roc_auc": roc_auc_score(y_val, proba)}

    console.print(f"breast_cancer: {len(X_train)} training rows, {len(X_val)} validation rows, "
                  f"{X_train.shape[1]} features")

    step("2. Register both with lineage and a reference profile")
    client = modelyard.Client()
    client.register(forest, name="cancer", data=X_val, metrics=metrics(forest),
                    params={"model": "random_forest", "n_estimators": 100},
                    description="random forest baseline", alias="production")
    v2 = client.register(logreg, name="cancer", data=X_val, metrics=metrics(logreg),
                         params={"model": "logreg", "C": 1.0},
                         description="scaled logistic regression")
    table = Table("version", "format", "aliases", "accuracy", "roc_auc", "rows", "data sha256",
                  "parent")
    for v in (client.get_version("cancer", 1), v2):
        assert v.lineage.data is not None
        table.add_row(str(v.version), v.format, ",".join(v.aliases) or "-",
                      f"{v.lineage.metrics['accuracy']:.3f}", f"{v.lineage.metrics['roc_auc']:.3f}",
                      str(v.lineage.data.rows), v.lineage.data.sha256[:8],
                      str(v.lineage.parent_version))
    console.print(table)
    profile = client.get_profile("models:/cancer@production")
    col = profile.column("mean radius")
    console.print(f"reference profile: {profile.rows} rows, {len(profile.columns)} columns; "
                  f"'mean radius' min={col.min:.2f} median={col.quantiles['0.5']:.2f} "
                  f"max={col.max:.2f}, histogram {col.histogram.counts if col.histogram else ''}")

    step("3. Promote the better model to production, load it back and predict")
    client.set_alias("cancer", "production", v2.version, reason="higher ROC AUC on validation")
    model = modelyard.load("models:/cancer@production")
    preds = model.predict(X_val.head(5))
    proba = model.predict_proba(X_val.head(5))[:, 1]
    console.print(f"loaded {model.version.uri} ({model.version.format}); first predictions "
                  f"{preds.tolist()} with p(benign) {np.round(proba, 3).tolist()}")
    assert (model.predict(X_val) == logreg.predict(X_val)).all()

    step("4. The signature guards the model")
    try:
        model.predict(X_val.drop(columns=["mean radius"]).head(2))
    except SignatureError as exc:
        console.print(f"[yellow]refused:[/] {exc}")

    step("5. Roll back, and see who moved the alias when")
    change = client.rollback("cancer", reason="demo rollback")
    console.print(f"rolled back @production: version {change.from_version} -> "
                  f"{change.to_version}")
    history = Table("when", "alias", "from", "to", "by", "reason")
    for c in client.alias_history("cancer"):
        history.add_row(c.at.strftime("%H:%M:%S"), c.alias, str(c.from_version),
                        str(c.to_version), c.actor, c.reason)
    console.print(history)

    step("6. Tampering is caught on load")
    manifest = client.artifacts.get_manifest(client.get_version("cancer", 2).artifact_digest)
    blob = next((HOME / "artifacts").rglob(manifest.entries[0].sha256))
    original = blob.read_bytes()
    blob.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        client.load("models:/cancer/2")
    except IntegrityError as exc:
        console.print(f"[yellow]refused:[/] {exc.message}")
    blob.write_bytes(original)

    step("7. The same registry from the command line")
    cli = [sys.executable, "-m", "modelyard"]
    subprocess.run([*cli, "models", "list"], check=True)
    subprocess.run([*cli, "models", "show", "models:/cancer@production"], check=True)

    step("8. Serve it: Open Inference Protocol v2 (REST and gRPC), MLflow and v1 routes")
    serve_and_swap(cli, X_val, y_val)
    watch(cli)
    audit(cli, X_val)
    secure(cli, X_val)
    everywhere(cli, X_val)
    close_the_loop(cli, data)
    dashboard(cli)

    client.close()
    console.print(Panel.fit(
        f"The whole loop in {time.perf_counter() - started:.1f} s, on SQLite and files under "
        f"{HOME}\n"
        f"report:     {HOME / 'cancer-report.html'} (drift, quality, accuracy, trends)\n"
        "rollouts:   modelyard rollout status cancer; modelyard rollout history cancer\n"
        "retraining: modelyard pipeline runs; modelyard pipeline show 1\n"
        "history:    modelyard alias history cancer; modelyard audit --model cancer\n"
        "live:       GET /metrics and /v2/models/cancer/rollout on any modelyard serve\n"
        "dashboard:  modelyard ui, then http://127.0.0.1:8090/ (a viewer key as password)",
        title="modelyard demo done: where to look", border_style="green"))


if __name__ == "__main__":
    main()
