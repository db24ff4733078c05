"""A student's hostile "server", run as the student (Debian's python3, stdlib only):
`python3 hostile_server.py PORT`. By path:

- `/user/<name>/stall`: reads the request, never answers;
- `/user/<name>/endless`: 200, then body without end (bounded here at ENDLESS_CAP, so that a
  proxy without backpressure fills with it but the machine does not);
- `/user/<name>/ws-stall`: a WebSocket upgrade it never answers;
- `/user/<name>/ws-flood`: accepts the WebSocket (101), then sends binary frames without end
  (bounded the same way).

It prints one line when it listens, and never reads what the proxy sends after the head.
"""

import asyncio
import base64
import hashlib
import sys

ENDLESS_CAP = 64 * 1024 * 1024  # bytes per connection
CHUNK = b"x" * 60000
WS_FRAME = b"\x82\x7e" + len(CHUNK).to_bytes(2, "big") + CHUNK
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ", 2)[1].decode()
        if path.endswith("/endless") or path.endswith("/ws-flood"):
            if path.endswith("/endless"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             b"Connection: close\r\n\r\n")
                chunk = CHUNK
            else:
                key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                           if line.lower().startswith(b"sec-websocket-key:"))
                accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
                writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept +
                             b"\r\n\r\n")
                chunk = WS_FRAME
            sent = 0
            while sent < ENDLESS_CAP:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
        # stall, ws-stall, and what follows the cap: hold the connection until it closes
        while await reader.read(65536):
            pass
    except (OSError, asyncio.IncompleteReadError, StopIteration):
        pass
    finally:
        writer.close()


async def main() -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
