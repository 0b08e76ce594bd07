"""TLS material for the servers: a PEM certificate (chain) and its private key, checked once at
start-up so that a wrong file is a one-line error, not a handshake failure on the first client.

The private key's bytes are kept out of ``repr`` and out of every message; only its path is
ever named.

>>> tls = load_tls("server.pem", "server.key")                      # doctest: +SKIP
>>> tls.cert_file                                                   # doctest: +SKIP
PosixPath('server.pem')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from modelyard.errors import ConfigurationError

__all__ = ["TlsFiles", "load_tls"]

_ENV_HINT = "(--tls-cert/--tls-key, or MODELYARD_SECURITY__TLS_CERT/__TLS_KEY)"


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """A checked certificate chain and private key: the paths (for uvicorn) and the PEM bytes
    (for gRPC). The key bytes never appear in ``repr``."""

    cert_file: Path
    key_file: Path
    cert_pem: bytes = field(repr=False)
    key_pem: bytes = field(repr=False)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(
            f"There is no TLS {what} file at {str(path)!r}.",
            hint=f"Pass the path of an existing PEM file {_ENV_HINT}.",
        ) from None
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot read the TLS {what} file {str(path)!r}: {exc.strerror or exc}.",
            hint="Make it readable by the user the server runs as (the key: by that user only).",
        ) from None


def load_tls(cert: str | Path | None, key: str | Path | None) -> TlsFiles | None:
    """Check a certificate and key pair for serving; None when neither is given.

    Raises :class:`ConfigurationError` when only one is given, a file is missing or
    unreadable, is not PEM, the key is encrypted, or the key does not match the certificate.
    """
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        given, missing = ("certificate", "key") if key is None else ("key", "certificate")
        raise ConfigurationError(
            f"TLS needs both a certificate and its private key; only the {given} was given.",
            hint=f"Pass the {missing} too {_ENV_HINT}, or neither to serve plain HTTP.",
        )
    # Imported here: cryptography's x509 costs 0.2 s at start-up of every server without TLS.
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert_path, key_path = Path(cert).expanduser(), Path(key).expanduser()
    cert_pem, key_pem = _read(cert_path, "certificate"), _read(key_path, "key")
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise ConfigurationError(
            f"{str(cert_path)!r} holds no PEM certificate.",
            hint="Pass the server certificate (and its chain) in PEM form as --tls-cert.",
        ) from None
    try:
        private_key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise ConfigurationError(
            f"The TLS key {str(key_path)!r} is encrypted; the server cannot prompt for its "
            "passphrase.",
            hint="Store it unencrypted in a file only the server's user can read (chmod 600).",
        ) from None
    except ValueError:  # never echo the parser's view of a private key
        raise ConfigurationError(
            f"{str(key_path)!r} holds no PEM private key.",
            hint="Pass the certificate's private key in PEM form as --tls-key.",
        ) from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    leaf = chain[0].public_key().public_bytes(serialization.Encoding.DER, spki)
    own = private_key.public_key().public_bytes(serialization.Encoding.DER, spki)
    if leaf != own:
        raise ConfigurationError(
            f"The TLS key {str(key_path)!r} does not belong to the certificate "
            f"{str(cert_path)!r} (their public keys differ).",
            hint="Pass the private key the certificate was issued for; the server "
            "certificate must come first in the PEM file.",
        )
    return TlsFiles(cert_path, key_path, cert_pem, key_pem)
