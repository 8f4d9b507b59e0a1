"""A loopback TCP proxy a test can cut, black-hole and restore, to fail a real server and heal it.

Three states:

- forwarding (:meth:`restore`, and on ``with``): bytes flow both ways;
- cut (:meth:`cut`): every connection closed, new ones refused: a server that stopped;
- black-holed (:meth:`blackhole`): new connections are accepted and established ones stay open,
  but not a byte moves either way, and nothing is closed: a server that hangs, or a network
  that drops packets. :meth:`restore` lets the established connections flow again and closes
  those accepted meanwhile (they never reached the server).

On loopback the proxy's kernel still acknowledges what the client sends, so only the client's
own timeouts (socket timeouts, libpq ``connect_timeout``, ``DATABASE_READ_TIMEOUT``) notice a
black hole; TCP keepalives and ``tcp_user_timeout`` do not. :meth:`cut` followed by
:meth:`blackhole` stands for a host gone from the network once those have closed the
established connections.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from types import TracebackType


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``target``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._forwarding = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self._held: set[socket.socket] = set()  # accepted while black-holed, never forwarded
        self._lock = threading.Lock()
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port: int = probe.getsockname()[1]
        probe.close()

    def restore(self) -> None:
        """Forward again: listen on the proxy's port if cut, let stalled connections flow."""
        self._close(self._held)
        self._forwarding.set()
        self._listen()

    def blackhole(self) -> None:
        """Accept connections but move no byte on any, and close none."""
        self._forwarding.clear()
        self._listen()

    def cut(self) -> None:
        """Stop listening and sever every open connection, like a server going down."""
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._threads.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._close(self._sockets)
        self._close(self._held)

    def _listen(self) -> None:
        if self._listener is not None:
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.2)
        self._listener = listener
        self._stop.clear()
        thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _close(self, sockets: set[socket.socket]) -> None:
        with self._lock:
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._forwarding.is_set():
                with self._lock:
                    self._held.add(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            pump = threading.Thread(target=self._pump, args=(client, upstream), daemon=True)
            pump.start()
            self._threads.append(pump)

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        try:
            while not self._stop.is_set():
                if not self._forwarding.wait(0.2):
                    continue  # black-holed: read nothing, send nothing, close nothing
                for key, _ in selector.select(timeout=0.2):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            selector.close()
            with self._lock:
                for sock in (client, upstream):
                    if sock in self._sockets:
                        self._sockets.discard(sock)
                        sock.close()

    def __enter__(self) -> TcpProxy:
        self.restore()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cut()
