"""A folder served over HTTP on the loopback interface, for download tests offline."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # the server's lines are not the test's
        pass


@contextlib.contextmanager
def served(root: Path) -> Iterator[str]:
    """Serve ``root`` on 127.0.0.1 for the block; yields its base URL (ending in ``/``)."""
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
