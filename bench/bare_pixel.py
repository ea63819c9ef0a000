"""A bare ASGI app for bench_server.py's ``--bare-asgi`` row: the same GIF and
headers as the pixel server, no token check and no log line, run by granian
exactly as ``mailtracker serve`` runs it. What separates its figures from
``mailtracker serve`` is our per-hit work; what separates them from nginx is
the HTTP server and the Python interpreter.
"""

from mailtracker.core.contract import GIF
from mailtracker.server.app import _GIF_HEADERS

_START = {"type": "http.response.start", "status": 200, "headers": _GIF_HEADERS}
_BODY = {"type": "http.response.body", "body": GIF}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif scope["type"] == "http":
        await send(_START)
        await send(_BODY)
