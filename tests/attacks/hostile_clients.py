"""The same student's clients, bombarding their own server through the proxy (stdlib only):
`python3 hostile_clients.py PROXY_PORT USER HOLD_SECONDS STALLS DISCONNECTS ENDLESS WS`.

Bounded in count and time, loopback only: first DISCONNECTS requests to /stall closed right
after sending; then ENDLESS requests to /endless and WS upgrades to /ws-flood and to /ws-stall
that never read a byte, and STALLS requests to /stall, all held for HOLD_SECONDS, then
closed. Prints what it opened.
"""

import asyncio
import base64
import os
import resource
import sys

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # as any student may


async def request(port: int, path: str, websocket: bool = False):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1)
    head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    if websocket:
        key = base64.b64encode(os.urandom(16)).decode()
        head += (f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 "Sec-WebSocket-Version: 13\r\n")
    writer.write((head + "\r\n").encode())
    await writer.drain()
    return writer


async def main() -> None:
    port, user, hold = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    stalls, disconnects, endless, ws = (int(arg) for arg in sys.argv[4:8])
    base = f"/user/{user}"
    # Clients that go away right after asking, in batches.
    for start in range(0, disconnects, 50):
        batch = [request(port, base + "/stall") for _ in range(min(50, disconnects - start))]
        for writer in await asyncio.gather(*batch, return_exceptions=True):
            if not isinstance(writer, Exception):
                writer.transport.abort()
        await asyncio.sleep(0.05)
    # Then clients that never read (an endless body, a WebSocket flood), then the stalls.
    batch = [request(port, base + "/endless") for _ in range(endless)]
    batch += [request(port, base + "/ws-flood", websocket=True) for _ in range(ws)]
    batch += [request(port, base + "/ws-stall", websocket=True) for _ in range(ws)]
    held = [w for w in await asyncio.gather(*batch, return_exceptions=True)
            if not isinstance(w, Exception)]
    for start in range(0, stalls, 256):
        batch = [request(port, base + "/stall") for _ in range(min(256, stalls - start))]
        held += [w for w in await asyncio.gather(*batch, return_exceptions=True)
                 if not isinstance(w, Exception)]
    print(f"opened {len(held)} held, {disconnects} closed at once", flush=True)
    await asyncio.sleep(hold)
    for writer in held:
        writer.transport.abort()
    print("closed", flush=True)


asyncio.run(main())
