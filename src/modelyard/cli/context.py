"""Per-invocation state: the settings and the client built from them, once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import typer

from modelyard.settings import Settings

if TYPE_CHECKING:
    from modelyard._client import Client

__all__ = ["State", "client_of"]


@dataclass
class State:
    settings: Settings
    debug: bool = False
    _client: Client | None = field(default=None, repr=False)

    def client(self) -> Client:
        from modelyard._client import Client

        if self._client is None:
            self._client = Client(self.settings)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def client_of(ctx: typer.Context) -> Client:
    state: State = ctx.obj
    return state.client()
