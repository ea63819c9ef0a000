"""A loopback TCP proxy that counts bytes and can break or hold the server's
answer part way, the way a dropped connection or a crashed server does."""

import socket
import threading
from typing import List, Optional


class TcpProxy:
    """Forwards 127.0.0.1:<port> to an upstream port, one pair of threads per connection.

    ``cut_after(n)``: the next connection gets n bytes of the server's answer, then both
    sides are closed. ``hold_after(n)``: the next connection stops forwarding after n bytes
    (``held`` is set) until ``release()``. ``down``/``up`` count bytes each way.
    """

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.down = 0
        self.up = 0
        self.connections = 0
        self.held = threading.Event()
        self._release = threading.Event()
        self._cut: Optional[int] = None
        self._hold: Optional[int] = None
        self._lock = threading.Lock()
        self._sockets: List[socket.socket] = []
        self._threads: List[threading.Thread] = []
        self._closed = False
        self._spawn(self._accept)

    def cut_after(self, count: int) -> None:
        self._cut = count

    def hold_after(self, count: int) -> None:
        self.held.clear()
        self._release.clear()
        self._hold = count

    def release(self) -> None:
        self._release.set()

    def drop_all(self) -> None:
        """Break every open connection (both sides see it end), as a NAT box or a network change
        does; new connections are still forwarded."""
        with self._lock:
            sockets = list(self._sockets)  # closed by close()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def reset_counts(self) -> None:
        with self._lock:
            self.down = self.up = 0

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._closed:
                    client.close()
                    server.close()
                    return
                self.connections += 1
                self._sockets += [client, server]
            cut, self._cut = self._cut, None
            hold, self._hold = self._hold, None
            self._spawn(self._pump, client, server, None, None, "up")
            self._spawn(self._pump, server, client, cut, hold, "down")

    def _pump(self, source, target, cut, hold, direction) -> None:
        sent = 0
        try:
            while True:
                if hold is not None and sent >= hold:
                    self.held.set()
                    self._release.wait(30)
                    hold = None
                limit = 65536
                if cut is not None:
                    limit = min(limit, cut - sent)
                if hold is not None:
                    limit = min(limit, hold - sent)
                if limit <= 0:
                    break
                data = source.recv(limit)
                if not data:
                    break
                target.sendall(data)
                sent += len(data)
                with self._lock:
                    if direction == "down":
                        self.down += len(data)
                    else:
                        self.up += len(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sockets = list(self._sockets)
        self._release.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in list(self._threads):
            thread.join(timeout=10)
        for sock in sockets:
            sock.close()
