"""The Python configurable-http-proxy, without its hidden limit of 10 requests at a time.

It proxies with tornado's SimpleAsyncHTTPClient, whose default max_clients is 10: the 11th
request in flight waits in a queue and gets a 503 after 20 s. A class waiting for its
servers holds many long requests (spawn progress streams, websockets), so everyone else's
requests would wait. Run as `python -m hubkeeper.hub.proxy <its usual arguments>`.
"""

from __future__ import annotations

import sys

from tornado.httpclient import AsyncHTTPClient

MAX_CLIENTS = 2048  # requests in flight at once; each is one socket to a server


def main() -> None:
    AsyncHTTPClient.configure(None, max_clients=MAX_CLIENTS)
    from configurable_http_proxy.cli import main as proxy_main

    sys.argv[0] = "configurable-http-proxy"
    sys.exit(proxy_main())


if __name__ == "__main__":
    main()
