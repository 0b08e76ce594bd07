"""TLS for REST and gRPC with a certificate authority and a server certificate (127.0.0.1 and
localhost) that the test makes once per module: clients that trust the test CA get answers,
plain-text clients and clients that do not trust the CA do not. Then every wrong TLS setting is
a one-line error before anything binds, and the key's bytes appear in no message or log.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from tritonclient.utils import InferenceServerException

from modelyard import Client
from modelyard.cli.main import main
from modelyard.errors import ConfigurationError
from modelyard.security.tls import TlsFiles, load_tls
from modelyard.serving.server import Server, build_app
from modelyard.settings import DeploymentSettings, ServingSettings, Settings

pytestmark = pytest.mark.timeout(60)

TIMEOUT = 10.0
KEY_MARKER = "PRIVATE KEY"  # the PEM armour of every private key file


# -- certificates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path  # the test CA's certificate: what clients trust
    other_ca: Path  # a CA that signed nothing here
    cert: Path  # the server certificate, issued by ``ca`` for 127.0.0.1 and localhost
    key: Path  # its private key
    other_key: Path  # a private key that belongs to no certificate here
    encrypted_key: Path  # ``key`` under a passphrase
    key_body: str  # a line from the middle of ``key``: must never be echoed


def _pem(key: ec.EllipticCurvePrivateKey,
         encryption: serialization.KeySerializationEncryption | None = None) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption or serialization.NoEncryption())


def _ca(name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True,
            content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca_cert, ca_key = _ca("modelyard test CA")
    other_ca, _ = _ca("another CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(ca=folder / "ca.pem", other_ca=folder / "other-ca.pem", cert=folder / "server.pem",
              key=folder / "server.key", other_key=folder / "other.key",
              encrypted_key=folder / "encrypted.key",
              key_body=_pem(key).decode().splitlines()[1])
    pki.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.other_ca.write_bytes(other_ca.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(_pem(key))
    pki.key.chmod(0o600)
    pki.other_key.write_bytes(_pem(ec.generate_private_key(ec.SECP256R1())))
    pki.encrypted_key.write_bytes(_pem(key, serialization.BestAvailableEncryption(b"secret")))
    return pki


# -- one server for the module: REST (uvicorn with ssl_*) and gRPC (secure port) -----------------


@dataclass(frozen=True)
class Served:
    host: str
    port: int
    grpc_port: int
    pki: Pki
    X: np.ndarray
    log: str  # everything the server logged while starting


@contextlib.contextmanager
def _https_server(server: Server, tls: TlsFiles) -> Iterator[int]:
    import uvicorn

    config = uvicorn.Config(server.app, host="127.0.0.1", port=0, lifespan="on",
                            access_log=False, log_level="warning", loop="asyncio",
                            http="httptools", ssl_certfile=str(tls.cert_file),
                            ssl_keyfile=str(tls.key_file))
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, name="uvicorn-tls-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + TIMEOUT
    while not runner.started:
        assert thread.is_alive(), "the TLS test server failed to start"
        assert time.monotonic() < deadline, "the TLS test server did not start"
        time.sleep(0.01)
    try:
        yield runner.servers[0].sockets[0].getsockname()[1]
    finally:
        runner.should_exit = True
        thread.join(TIMEOUT)


@pytest.fixture(scope="module")
def served(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("tls") / "home"
    X, y = load_iris(return_X_y=True)
    X = np.asarray(X, dtype=np.float64)
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep(logging.DEBUG)
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with Client(Settings(home=home, user="tester")) as client:
            client.register(LogisticRegression(max_iter=500).fit(X, y), "iris", data=X,
                            alias="production")
            tls = load_tls(pki.cert, pki.key)
            assert tls is not None
            serving = ServingSettings(
                deployments=[DeploymentSettings(model="models:/iris@production")],
                grpc_port=0)
            server = build_app(client, serving, wait_for_models=True, tls=tls)
            with _https_server(server, tls) as port:
                assert server.grpc_port is not None
                yield Served("127.0.0.1", port, server.grpc_port, pki, X, "\n".join(records))
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)


def _trusting(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def _body(X: np.ndarray) -> dict[str, object]:
    return {"inputs": [{"name": "input", "shape": [3, 4], "datatype": "FP64",
                        "data": X[:3].ravel().tolist()}]}


# -- REST --------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"], ids=["ip", "name"])
def test_rest_over_https_with_the_test_ca(served: Served, host: str) -> None:
    base = f"https://{host}:{served.port}"
    with httpx.Client(base_url=base, verify=_trusting(served.pki.ca), timeout=TIMEOUT) as http:
        assert http.get("/v2/health/live").status_code == 200
        answer = http.post("/v2/models/iris/infer", json=_body(served.X))
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == "1"


@pytest.mark.parametrize(
    ("scheme", "verify", "error"),
    [
        ("http", None, httpx.RemoteProtocolError),
        ("https", "other", httpx.ConnectError),
        ("https", "system", httpx.ConnectError),
    ],
    ids=["plain-http", "other-ca", "system-cas"],
)
def test_rest_refuses_plain_http_and_untrusting_clients(
        served: Served, scheme: str, verify: str | None, error: type[Exception]) -> None:
    context: ssl.SSLContext | bool = True
    if verify == "other":
        context = _trusting(served.pki.other_ca)
    elif verify == "system":
        context = ssl.create_default_context()
    with httpx.Client(verify=context, timeout=TIMEOUT) as http, pytest.raises(error):
        http.get(f"{scheme}://127.0.0.1:{served.port}/v2/health/live")


# -- gRPC --------------------------------------------------------------------------------------


def _grpc(served: Served, **kwargs: object) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(f"127.0.0.1:{served.grpc_port}", **kwargs)


def test_grpc_over_tls_with_the_test_ca(served: Served) -> None:
    client = _grpc(served, ssl=True, root_certificates=str(served.pki.ca))
    try:
        assert client.is_server_live(client_timeout=TIMEOUT)
        tensor = grpcclient.InferInput("input", [3, 4], "FP64")
        tensor.set_data_from_numpy(served.X[:3])
        result = client.infer("iris", [tensor], client_timeout=TIMEOUT)
        assert result.get_response().model_version == "1"
        assert result.as_numpy("predict").shape == (3,)
    finally:
        client.close()


@pytest.mark.parametrize(
    "kwargs",
    [{"ssl": False}, {"ssl": True, "root_certificates": "other"}],
    ids=["plaintext", "other-ca"],
)
def test_grpc_refuses_plaintext_and_untrusting_clients(served: Served,
                                                       kwargs: dict[str, object]) -> None:
    if kwargs.get("root_certificates") == "other":
        kwargs = {**kwargs, "root_certificates": str(served.pki.other_ca)}
    client = _grpc(served, **kwargs)
    try:
        with pytest.raises(InferenceServerException, match=r"StatusCode\.UNAVAILABLE"):
            client.is_server_live(client_timeout=3.0)
    finally:
        client.close()


def test_the_start_up_log_names_tls_but_never_the_key(served: Served) -> None:
    assert f"gRPC server listening on 127.0.0.1:{served.grpc_port} (TLS)" in served.log
    assert KEY_MARKER not in served.log
    assert served.pki.key_body not in served.log


# -- wrong settings ------------------------------------------------------------------------------


def _paths(pki: Pki, cert: str | None, key: str | None) -> tuple[Path | None, Path | None]:
    named = {"cert": pki.cert, "ca": pki.ca, "key": pki.key, "other_key": pki.other_key,
             "encrypted": pki.encrypted_key, "missing": pki.cert.with_name("missing.pem"),
             "folder": pki.cert.parent}
    return (named[cert] if cert else None, named[key] if key else None)


_WRONG = [
    ("cert", None, r"only the certificate was given\. Pass the key too"),
    (None, "key", r"only the key was given\. Pass the certificate too"),
    ("missing", "key", r"There is no TLS certificate file at '.*missing\.pem'"),
    ("cert", "folder", r"Cannot read the TLS key file '.*': Is a directory"),
    ("key", "key", r"holds no PEM certificate"),
    ("cert", "cert", r"holds no PEM private key"),
    ("cert", "encrypted", r"is encrypted; the server cannot prompt for its passphrase"),
    ("cert", "other_key", r"does not belong to the certificate"),
    ("ca", "key", r"does not belong to the certificate"),
]
_WRONG_IDS = ["cert-only", "key-only", "missing-cert", "unreadable-key", "key-as-cert",
              "cert-as-key", "encrypted-key", "other-key", "ca-as-cert"]


@pytest.mark.parametrize(("cert", "key", "match"), _WRONG, ids=_WRONG_IDS)
def test_wrong_tls_files_are_one_line_errors(pki: Pki, cert: str | None, key: str | None,
                                             match: str) -> None:
    with pytest.raises(ConfigurationError, match=match) as info:
        load_tls(*_paths(pki, cert, key))
    text = str(info.value)
    assert "\n" not in text
    assert KEY_MARKER not in text
    assert pki.key_body not in text


def test_loaded_tls_files_hide_the_key(pki: Pki) -> None:
    tls = load_tls(pki.cert, pki.key)
    assert tls is not None
    assert tls.key_pem == pki.key.read_bytes()
    assert KEY_MARKER not in repr(tls)
    assert load_tls(None, None) is None


@pytest.mark.parametrize(("cert", "key", "match"), [_WRONG[0], _WRONG[7]],
                         ids=[_WRONG_IDS[0], _WRONG_IDS[7]])
def test_serve_refuses_to_start_with_wrong_tls(pki: Pki, cert: str | None, key: str | None,
                                               match: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    cert_path, key_path = _paths(pki, cert, key)
    args = ["serve", "models:/iris@production", "--port", "0", "--no-grpc"]
    args += ["--tls-cert", str(cert_path)] if cert_path else []
    args += ["--tls-key", str(key_path)] if key_path else []
    assert main(args) == 6
    captured = capsys.readouterr()
    # The error is the last thing said (other start-up checks may speak first); no server
    # was announced.
    lines = captured.err.strip().splitlines()[-2:]
    assert [line.split(":")[0] for line in lines] == ["Error", "Hint"]
    assert "Serving" not in captured.err
    assert re.search(match, " ".join(line.split(": ", 1)[1] for line in lines))
    assert KEY_MARKER not in captured.out + captured.err


def test_the_dashboard_speaks_https_with_the_same_files(pki: Pki, tmp_path: Path) -> None:
    """``modelyard ui --tls-cert --tls-key``: pages over HTTPS with the test CA; plain HTTP and
    clients that do not trust the CA get nothing; one file alone is refused before binding."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["MODELYARD_HOME"] = str(tmp_path / "home")
    cli = [sys.executable, "-m", "modelyard", "ui", "--port", str(port)]
    refused = subprocess.run([*cli, "--tls-cert", str(pki.cert)], env=env, capture_output=True,
                             text=True, timeout=60, check=False)
    assert refused.returncode == 6
    assert "only the certificate was given" in refused.stderr
    assert "Traceback" not in refused.stderr
    proc = subprocess.Popen([*cli, "--tls-cert", str(pki.cert), "--tls-key", str(pki.key)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                page = httpx.get(f"https://127.0.0.1:{port}/", verify=_trusting(pki.ca))
                break
            except httpx.ConnectError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        assert page.status_code == 200
        assert "<h1>Models</h1>" in page.text
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=TIMEOUT)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"https://127.0.0.1:{port}/", verify=_trusting(pki.other_ca))
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert f"https://127.0.0.1:{port}/" in err
    assert KEY_MARKER not in err
