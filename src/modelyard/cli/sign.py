"""``modelyard sign`` and ``modelyard verify``: Ed25519 signatures of model versions.

A signature covers a version's content (its artifact manifest digest), model name and version
number. With ``security.require_signed``, ``modelyard serve`` loads only versions signed by one
of ``security.trusted_keys`` (:func:`serving_source`).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from modelyard.cli.context import client_of
from modelyard.cli.render import console, print_json, when
from modelyard.errors import ConfigurationError, InvalidInputError

if TYPE_CHECKING:
    from modelyard._client import Client
    from modelyard.serving.source import ModelSource
    from modelyard.settings import Settings

__all__ = ["serving_source", "sign", "verify"]

log = logging.getLogger("modelyard.serving")


def sign(
    ctx: typer.Context,
    ref: str | None = typer.Argument(None, help="The version to sign: models:/NAME/VERSION."),
    key: Path | None = typer.Option(None, "--key", "-k", help="Ed25519 private key (PEM)."),
    generate_key: Path | None = typer.Option(
        None, "--generate-key", help="Write a new key pair to DIR (private.pem, public.pem)."),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Sign a model version, or create a signing key pair.

    Example: modelyard sign --generate-key keys/ && modelyard sign models:/fraud/3 --key
    keys/private.pem
    """
    if generate_key is not None:
        if ref is not None or key is not None:
            raise InvalidInputError(
                "--generate-key creates a key pair and signs nothing.",
                hint="Run 'modelyard sign --generate-key DIR' alone, then 'modelyard sign REF "
                "--key DIR/private.pem'.")
        _generate(generate_key, json=json)
        return
    if ref is None or key is None:
        missing = "a reference" if ref is None else "--key"
        raise InvalidInputError(
            f"modelyard sign needs {missing}.",
            hint="Run 'modelyard sign models:/NAME/VERSION --key private.pem' (no key yet? "
            "'modelyard sign --generate-key DIR').")
    signature = client_of(ctx).sign(ref, key)
    if json:
        print_json(signature.to_dict())
        return
    console.print(f"Signed {signature.uri} (content {signature.digest[:12]}) with key "
                  f"{signature.key_id}.", soft_wrap=True)


def _generate(directory: Path, *, json: bool) -> None:
    from modelyard.security.signing import generate_key_pair

    files = generate_key_pair(directory)
    if json:
        print_json({"key_id": files.key_id, "private_key": str(files.private_key),
                    "public_key": str(files.public_key)})
        return
    console.print(
        f"Key {files.key_id}: private key {files.private_key} (mode 0600: keep it secret, "
        f"off the serving machines), public key {files.public_key} (give it to servers as "
        "security.trusted_keys).", soft_wrap=True)


def verify(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="The version to check: models:/NAME/VERSION."),
    trusted: list[Path] | None = typer.Option(
        None, "--trusted", "-t",
        help="Trusted public key (PEM); repeatable. Default: security.trusted_keys."),
    skip_files: bool = typer.Option(
        False, "--skip-files", help="Check the signature only, not the stored files' bytes."),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Check that a version is signed by a trusted key and that its files still match.

    Exits non-zero when no trusted key signed it (1), a signature does not match (5), or no
    trusted key is configured (6).

    Example: modelyard verify models:/fraud/3 --trusted keys/public.pem
    """
    client = client_of(ctx)
    signature = client.verify(ref, trusted or None)
    files = None
    if not skip_files:
        version = client.resolve(ref)
        with tempfile.TemporaryDirectory(prefix="modelyard-verify-") as tmp:
            # fetch_tree re-hashes every blob: a changed byte raises IntegrityError.
            files = len(client.artifacts.fetch_tree(version.artifact_digest, tmp).entries)
    if json:
        print_json({"uri": signature.uri, "valid": True, "key_id": signature.key_id,
                    "signed_by": signature.signed_by,
                    "signed_at": signature.signed_at.isoformat(), "files_checked": files})
        return
    checked = "" if files is None else f"; its {files} file(s) match the signed content"
    console.print(f"{signature.uri} is signed by trusted key {signature.key_id} "
                  f"({signature.signed_by}, {when(signature.signed_at)} UTC){checked}.",
                  soft_wrap=True)


def serving_source(settings: Settings, client: Client) -> ModelSource:
    """What ``modelyard serve`` loads models from: the client, or, with
    ``security.require_signed``, the client behind a check that the version is signed by a
    trusted key (read once, at start-up)."""
    if not settings.security.require_signed:
        return client
    from modelyard.security.signing import load_trusted_keys
    from modelyard.serving.source import SignedSource

    if not settings.security.trusted_keys:
        raise ConfigurationError(
            "security.require_signed is on, but no trusted public key is configured, so no "
            "model could be served.",
            hint="Set MODELYARD_SECURITY__TRUSTED_KEYS='[\"/path/public.pem\"]' (or turn "
            "require_signed off).")
    keys = load_trusted_keys(settings.security.trusted_keys)
    log.info("Serving only versions signed by trusted key(s) %s", ", ".join(sorted(keys.keys)))
    return SignedSource(client, lambda version: client.verify(version.uri, keys))
