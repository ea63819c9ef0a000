"""A loopback HTTP server of the tests' own that answers the puller's requests
however a test says: a huge or endless listing, an endless or trickling body,
the wrong span, a file that shrinks, a redirect. It stands for a hostile or
broken pull server (or whoever sits in the middle of an http:// pull URL)."""

import json
import socket
import threading
import time
from typing import Callable, Dict, List


class LyingServer:
    """``routes``: path (without the query) -> function(request) -> answer, where the answer
    is bytes (sent as is, then the connection is closed) or an iterable of bytes (each piece
    sent in turn: a trickle or an endless body). ``requests`` records every request seen."""

    def __init__(self, routes: Dict[str, Callable[[dict], object]]):
        self.routes = routes
        self.requests: List[dict] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stopping = False
        self._threads: List[threading.Thread] = []
        self._sockets: List[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopping:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self._sockets.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        with sock:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                data += chunk
            head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            method, target, _ = head[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
            request = {"method": method, "path": target.split("?", 1)[0], "target": target, "headers": headers}
            self.requests.append(request)
            route = self.routes.get(request["path"])
            answer = route(request) if route else response(404, b"not found\n")
            try:
                for piece in [answer] if isinstance(answer, bytes) else answer:
                    if self._stopping:
                        return
                    sock.sendall(piece)
            except OSError:
                return

    def close(self) -> None:
        self._stopping = True
        for sock in [self.listener, *self._sockets]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.listener.close()
        for thread in [self._thread, *self._threads]:
            thread.join(5)


def response(status: int, body: bytes = b"", headers: Dict[str, str] = None, length: bool = True) -> bytes:
    """A whole HTTP/1.1 answer that closes its connection."""
    lines = [f"HTTP/1.1 {status} X", "Connection: close"]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def listing(files: Dict[str, int], etag: str = '"lie"') -> Callable[[dict], bytes]:
    body = json.dumps({"files": [{"name": n, "size": s} for n, s in files.items()]}).encode()
    return lambda request: response(200, body, {"Content-Type": "application/json", "ETag": etag})


def endless(head: bytes, piece: bytes, pause_s: float = 0.0):
    """``head``, then ``piece`` for ever (every ``pause_s``: a trickle)."""
    yield head
    while True:
        if pause_s:
            time.sleep(pause_s)
        yield piece


def trickling(body: bytes, more: int = 1000):
    """An answer to a file request that sends ``body`` at once as the start of a 206 of
    ``more`` bytes beyond it, then one byte every 0.2 s, for ever; with that total size."""
    total = len(body) + more

    def trickle(request):
        head = (f"HTTP/1.1 206 Partial\r\nContent-Length: {total}\r\n"
                f"Content-Range: bytes 0-{total - 1}/{total}\r\n\r\n").encode() + body
        return endless(head, b"x", pause_s=0.2)

    return trickle, total
