"""Helpers for the gateway tests: a real server on 127.0.0.1 and a free port, in the test's
own event loop, started and stopped by the test."""
from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import msgspec
import pytest
import uvloop

from engine.config import EngineConfig, default_config
from engine.gateway.client import Client
from engine.gateway.server import Server

ALICE = (1, "demo-alice-key")
BOB = (2, "demo-bob-key")          # cancel_on_disconnect = true in the default config
ADMIN = (9, "demo-admin-key")
AAPL = 1                           # ticks of 0.01, lots of 1


def config(**gateway: Any) -> EngineConfig:
    """The default config with some [gateway] settings changed."""
    base = default_config()
    return msgspec.structs.replace(base, gateway=msgspec.structs.replace(base.gateway, **gateway))


def run(coro_fn: Callable[[], Coroutine[Any, Any, Any]], timeout: float = 60.0) -> Any:
    """Run an async test body on a fresh uvloop event loop (as `engine serve` runs), bounded in
    time."""
    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro_fn(), timeout))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@contextlib.asynccontextmanager
async def serving(cfg: EngineConfig | None = None, **kw: Any) -> AsyncIterator[tuple[Server, int]]:
    """A started server (durability 'none' unless a journal_dir is given) and its port."""
    kw.setdefault("durability", "none" if kw.get("journal_dir") is None else "write")
    server = Server(cfg or default_config(), **kw)
    port = await server.start("127.0.0.1", 0)
    try:
        yield server, port
    finally:
        await server.stop()


async def logon(port: int, who: tuple[int, str], **kw: Any) -> Client:
    return await Client.connect("127.0.0.1", port, who[0], who[1], **kw)


async def settle(server: Server, rounds: int = 5) -> None:
    """Let the loop run until the server has processed and released what it received."""
    for _ in range(rounds):
        await asyncio.sleep(0.01)


@pytest.fixture
def port():
    """A gateway on 127.0.0.1 (any free port), on its own event loop in a thread, for blocking
    clients (SyncClient, `engine client`)."""
    loop = uvloop.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = Server(default_config(), durability="none")
    p = asyncio.run_coroutine_threadsafe(server.start("127.0.0.1", 0), loop).result(10)
    yield p
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()
