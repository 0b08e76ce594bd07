"""The modelyard end-to-end demo, on embedded defaults (SQLite and local files).

Run it with `make demo`. Every capability that lands extends this script:
today it covers the registry (register with lineage and a reference profile, aliases, loading
with integrity checks, signature enforcement, rollback) and the CLI.
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


def serve_and_swap(cli: list[str], X_val: Any) -> None:
    """Start `modelyard serve`, call it with three protocols, move the alias, watch it swap."""
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
            while True:
                try:
                    if http.get("/v2/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.perf_counter() - started > 60:
                    raise SystemExit("the server did not become ready within 60 s")
                time.sleep(0.05)
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
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
        console.print(f"SIGTERM -> the server drained and exited with code {code}")


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
    serve_and_swap(cli, X_val)

    client.close()
    console.print(Panel.fit(
        f"Registry at {HOME}\nwhole loop so far in {time.perf_counter() - started:.1f} s. "
        "Next: monitoring, retraining, batch and edge (see the issues).",
        title="modelyard demo done", border_style="green"))


if __name__ == "__main__":
    main()
