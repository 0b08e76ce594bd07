"""``modelyard security generate-key|rotate-key``: encryption at rest
(docs/security-encryption.md)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from modelyard.cli.context import State, client_of
from modelyard.cli.render import console, err_console, print_json
from modelyard.errors import ConflictError, IntegrityError, InvalidInputError

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["app"]

app = typer.Typer(help="Encryption at rest: generate keys and rotate them.",
                  no_args_is_help=True)


@app.command("generate-key")
def generate_key(
    output: Path | None = typer.Option(
        None, "--output", "-o",
        help="Write the key to this file (mode 0600) instead of standard output."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Make a new random AES-256 key (base64 of 32 bytes).

    Printed alone on standard output, or written to a file only its owner can read. Point
    MODELYARD_SECURITY__ENCRYPTION_KEY_FILE at the file to encrypt artifacts and logs.

    Example: modelyard security generate-key -o ~/.modelyard/encryption.key
    """
    from modelyard.security.encryption import encode_key, generate_key, key_id

    key = generate_key()
    text = encode_key(key) + "\n"
    if output is None:
        console.file.write(text)
        err_console.print(f"New encryption key, id {key_id(key)}. Keep it secret and backed "
                          "up: whatever it encrypts cannot be read without it.",
                          soft_wrap=True, markup=False)
        return
    path = output.expanduser()
    _write_private(path, text, force=force)
    err_console.print(
        f"Wrote encryption key {key_id(key)} to {path} (mode 0600). Use it with "
        f"MODELYARD_SECURITY__ENCRYPTION_KEY_FILE={path}, and back it up: whatever it "
        "encrypts cannot be read without it.", soft_wrap=True, markup=False)


def _write_private(path: Path, text: str, *, force: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise ConflictError(f"There is already a file at {str(path)!r}; a key is never "
                            "overwritten by accident.",
                            hint="Choose another path, or pass --force.") from None
    except OSError as exc:
        raise InvalidInputError(f"Cannot write the key file {str(path)!r}: {exc.strerror}.",
                                hint="Check that its folder exists and is writable.") from None
    try:
        os.fchmod(fd, 0o600)  # an existing file (--force) keeps its mode otherwise
        os.write(fd, text.encode("ascii"))
    finally:
        os.close(fd)


@dataclass
class _Tally:
    rewritten: int = 0
    current: int = 0
    failed: list[str] = field(default_factory=list)


@app.command("rotate-key")
def rotate_key(
    ctx: typer.Context,
    new_key_file: Path = typer.Option(
        ..., "--new-key-file", help="File holding the new key (modelyard security "
                                    "generate-key -o FILE); its first key encrypts."),
    json: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
) -> None:
    """Re-encrypt every artifact blob and inference log file or row under a new key.

    The configured key (MODELYARD_SECURITY__ENCRYPTION_KEY or ..._KEY_FILE) reads; the new
    key writes. Objects stored in clear are encrypted too, so this also turns encryption on
    for an installation that had it off. Each object is written anew, checked, then swapped
    in; objects already under the new key are skipped, so running it again resumes an
    interrupted rotation. Afterwards, configure the new key: the old one reads nothing.

    Example: modelyard security rotate-key --new-key-file ~/.modelyard/new.key
    """
    from modelyard.monitoring.log_store import ParquetLogStore, SqlLogStore
    from modelyard.registry.artifacts import ArtifactStore
    from modelyard.security.encryption import (
        Keyring,
        keyring_from_settings,
        parse_keys,
        read_key_file,
    )

    state: State = ctx.obj
    settings = state.settings
    new_keys = parse_keys(read_key_file(new_key_file),
                          source=f"the key file {str(new_key_file)!r}")
    new = Keyring(new_keys[0], new_keys[1:])
    old = keyring_from_settings(settings.security)
    ring = new if old is None else old.rotated_to(new)
    artifacts = ArtifactStore(settings.resolved_artifact_uri(), keyring=ring)
    uri = settings.resolved_log_uri()
    files_store = ParquetLogStore(uri, keyring=ring) if uri != "sql" else None
    sql_store = SqlLogStore(client_of(ctx).store.engine, keyring=ring)

    digests = artifacts.blob_digests()
    files = files_store.log_files() if files_store is not None else []
    total_rows = sql_store.count_rows()
    tallies = {"artifact blobs": _Tally(), "log files": _Tally(), "log rows": _Tally()}
    with _progress() as progress:
        _each(progress, "artifact blobs", digests, artifacts.rekey_blob,
              tallies["artifact blobs"], lambda d: f"artifact blob {d[:12]}")
        if files_store is not None:
            _each(progress, "log files", files, files_store.rekey_file, tallies["log files"],
                  str)
        task = progress.add_task("log rows", total=total_rows)
        for seen, rewritten, failed in sql_store.rekey_rows():
            tallies["log rows"].rewritten += rewritten
            tallies["log rows"].current += seen - rewritten - len(failed)
            tallies["log rows"].failed += failed
            progress.advance(task, seen)
    _report(tallies, ring.current_id, new_key_file, json=json)


def _progress() -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(TextColumn("{task.description:<15}"), BarColumn(), MofNCompleteColumn(),
                    console=err_console, transient=True,
                    disable=not err_console.is_terminal)  # no stray lines in logs and pipes


def _each(progress: Progress, label: str, items: Iterable[str],
          rekey: Callable[[str], bool], tally: _Tally, name: Callable[[str], str]) -> None:
    """Rekey every item; a tampered object is left as it was and reported at the end (a wrong
    configured key is a DecryptionError and stops the run at once)."""
    items = list(items)
    task = progress.add_task(label, total=len(items))
    for item in items:
        try:
            if rekey(item):
                tally.rewritten += 1
            else:
                tally.current += 1
        except IntegrityError:
            tally.failed.append(name(item))
        progress.advance(task)


def _report(tallies: dict[str, _Tally], kid: str, key_file: Path, *, json: bool) -> None:
    failed = [n for t in tallies.values() for n in t.failed]
    if json:
        print_json({"key_id": kid, **{k.replace(" ", "_"): asdict(t) for k, t in
                                      tallies.items()}})
    else:
        for label, t in tallies.items():
            line = f"{label}: {t.rewritten} re-encrypted, {t.current} already under key {kid}"
            console.print(line + (f", {len(t.failed)} failed" if t.failed else ""),
                          markup=False)
    if failed:
        shown = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5
                                         else "")
        raise IntegrityError(
            f"{len(failed)} object(s) failed their integrity check and were left as they were: "
            f"{shown}.", hint="Restore them from a backup, then run rotate-key again.")
    if not json:
        err_console.print(
            f"Now configure the new key (MODELYARD_SECURITY__ENCRYPTION_KEY_FILE={key_file}) "
            "on every server and client: the old key reads nothing any more.",
            soft_wrap=True, markup=False)

