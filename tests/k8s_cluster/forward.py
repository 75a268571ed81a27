"""Byte-for-byte stream forwarder that carries connections across a network namespace boundary.

Unix sockets live in the file system, not in a network namespace, so a pair of these joins the test process
(host loopback) to the apiserver (loopback of the cluster's private namespace) without giving the namespace any
route out:

    inside the namespace:  forward.py unix-to-tcp SOCKET 127.0.0.1 6443
    on the host:           forward.py tcp-to-unix 127.0.0.1 0 SOCKET   (prints the bound port, then serves)
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

Opener = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()


def _handler(open_upstream: Opener) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await open_upstream()
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return handle


def _remove_stale(path: str) -> None:
    Path(path).unlink(missing_ok=True)


async def _main(argv: list[str]) -> None:
    mode = argv[0]
    if mode == "unix-to-tcp":
        path, host, port = argv[1], argv[2], int(argv[3])
        _remove_stale(path)
        server = await asyncio.start_unix_server(_handler(lambda: asyncio.open_connection(host, port)), path)
        print("ready", flush=True)
    elif mode == "tcp-to-unix":
        host, port, path = argv[1], int(argv[2]), argv[3]
        server = await asyncio.start_server(_handler(lambda: asyncio.open_unix_connection(path)), host, port)
        print(server.sockets[0].getsockname()[1], flush=True)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(sys.argv[1:]))
