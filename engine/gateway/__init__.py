"""The TCP gateway: wire protocol, sessions, execution reports, market data, client.

This module only re-exports. Messages and framing are in ``protocol`` (docs/PROTOCOL.md),
API keys in ``auth``, report numbering in ``reports``, books for subscribers in
``marketdata``, venue names and routed orders at the edge in ``routing``, the risk messages'
exact conversions in ``risk``, the asyncio server in ``server``, the client library in
``client``.
"""
from __future__ import annotations

__all__ = ["Server", "serve", "Client", "SyncClient", "ClientError", "ReportBuilder"]


def __getattr__(name: str):
    # Lazy, so that the config (which checks key hashes) does not import asyncio and uvloop.
    if name in ("Server", "serve"):
        from . import server
        return getattr(server, name)
    if name in ("Client", "SyncClient", "ClientError"):
        from . import client
        return getattr(client, name)
    if name == "ReportBuilder":
        from .reports import ReportBuilder
        return ReportBuilder
    raise AttributeError(name)
