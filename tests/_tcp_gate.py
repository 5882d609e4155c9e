"""A TCP port in front of a real server that a test can close, stall or open: network faults, for real.

``down()`` closes the port, so connecting is refused, which is what a stopped server looks like;
``stall()`` accepts connections and never answers (a hung server, or a load balancer whose backend
is gone); ``forward()`` passes bytes both ways to the server, including those of connections held
while stalled, which then get their answers late.

Example:
    >>> gate = Gate(upstream_port=5000)  # doctest: +SKIP
    >>> gate.stall(); gate.forward(); gate.down()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _mlflow_server import free_port


class Gate:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._listener: socket.socket | None = None
        self._open = threading.Event()  # set: forward; clear: hold what comes in
        self._lock = threading.Lock()
        self._held: list[socket.socket] = []
        self._sockets: list[socket.socket] = []

    @property
    def held(self) -> int:
        """Connections accepted while stalled and not answered yet."""
        with self._lock:
            return len(self._held)

    def down(self) -> None:
        """Close the port and every connection through it: connecting is refused from now on."""
        self._open.clear()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        self._drop_connections()

    def stall(self) -> None:
        """Accept connections, read nothing and answer nothing (connections open until now are cut)."""
        self._open.clear()
        self._drop_connections()
        self._listen()

    def _drop_connections(self) -> None:
        with self._lock:
            sockets, self._sockets, self._held = self._sockets, [], []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def forward(self) -> None:
        """Pass everything to the server, starting with the connections held so far."""
        self._listen()
        with self._lock:
            held, self._held = self._held, []
            self._open.set()
        for client in held:
            self._pipe(client)

    def _listen(self) -> None:
        if self._listener is not None:
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="gate-accept", daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down()
            with self._lock:
                self._sockets.append(client)
                if not self._open.is_set():
                    self._held.append(client)
                    continue
            self._pipe(client)

    def _pipe(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        except OSError:
            client.close()
            return
        with self._lock:
            self._sockets.append(upstream)
        for source, target in ((client, upstream), (upstream, client)):
            threading.Thread(target=_copy, args=(source, target), name="gate-pipe", daemon=True).start()


def _copy(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)
