"""Run an ASGI app on a real uvicorn server in a background thread, for tests.

>>> with running_server(server.app) as base_url:          # doctest: +SKIP
...     httpx.get(f"{base_url}/v2/health/live")
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["running_server"]


@contextlib.contextmanager
def running_server(app: Any, *, host: str = "127.0.0.1", port: int = 0,
                   timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` on ``host`` (loopback) and yield its base URL; stop it afterwards."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, lifespan="on", access_log=False,
                            log_level="warning", loop="asyncio", http="httptools")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("The test server failed to start; see the log above.")
        if time.monotonic() > deadline:
            raise TimeoutError(f"The test server did not start within {timeout} s.")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout)
