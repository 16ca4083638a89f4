"""`volume view SEQUENCE`: the viewer page and a sequence's frames served on 127.0.0.1 only.

Frames are encoded to ``.spz`` as the page asks for them, and the next ones ahead of it on worker
threads (``page.FrameCache``), so the page streams a long sequence without the server holding it
whole. The source video is served with byte ranges (browsers seek a video by range requests).
"""

from __future__ import annotations

import json
import mimetypes
import re
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from volume_cli.formats import Sequence
from volume_cli.view.page import STATIC_DIR, VIEW_JSON, FrameCache, source_video, video_name, view_description

HOST = "127.0.0.1"
PREFETCH_FRAMES = 32  # frames encoded ahead of the latest one asked for (the page asks 24 ahead)
_FRAME_PATH = re.compile(r"/frames/(\d{6})\.spz")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".txt": "text/plain; charset=utf-8"}


class PortInUseError(OSError):
    pass


class ViewServer:
    """Serves one sequence's page on ``HOST``:``port`` (0: a free port) until ``shutdown``."""

    def __init__(self, sequence: Sequence, *, port: int = 0, loop: bool = True, side_by_side: bool = False):
        self.video = source_video(sequence)
        self.description = view_description(sequence, loop=loop, video=self.video, side_by_side=side_by_side)
        self.frames = FrameCache(sequence)
        self.frames.warm()
        try:
            self.httpd = ThreadingHTTPServer((HOST, port), _handler_for(self))
        except OSError as e:
            self.frames.close()
            if e.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
                raise PortInUseError(e.errno, f"port {port} is already in use on {HOST}") from e
            raise
        self.httpd.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.httpd.server_address[1]}/"

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def start_in_thread(self) -> threading.Thread:
        """Serve on a daemon thread (tests); stop with ``shutdown``."""
        thread = threading.Thread(target=self.serve_forever, name="volume-view", daemon=True)
        thread.start()
        return thread

    def shutdown(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.frames.close()


def _handler_for(server: ViewServer) -> type[BaseHTTPRequestHandler]:
    view_json = json.dumps(server.description).encode()
    video_path = "/" + video_name(server.video) if server.video is not None else None

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
            self.do_GET(body=False)

        def do_GET(self, body: bool = True) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0].split("#", 1)[0]
            try:
                if path in ("/", "/index.html"):
                    self._send_file(STATIC_DIR / "index.html", body)
                elif path.startswith("/assets/"):
                    self._send_asset(path[len("/assets/"):], body)
                elif path == "/" + VIEW_JSON:
                    self._send(view_json, "application/json", body)
                elif m := _FRAME_PATH.fullmatch(path):
                    self._send_frame(int(m.group(1)), body)
                elif video_path is not None and path == video_path:
                    self._send_video(body)
                else:
                    self.send_error(HTTPStatus.NOT_FOUND)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the page went away or cancelled a request

        def _send_asset(self, relative: str, body: bool) -> None:
            file = (STATIC_DIR / relative).resolve()
            if STATIC_DIR not in file.parents or not file.is_file():
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            self._send_file(file, body)

        def _send_frame(self, i: int, body: bool) -> None:
            try:
                data = server.frames.get(i)
            except IndexError:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            except (OSError, ValueError) as e:
                print(f"Error: frame {i}: {e}", file=sys.stderr)
                self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR, explain=str(e))
                return
            server.frames.prefetch(i + 1, PREFETCH_FRAMES)
            self._send(data, "application/octet-stream", body)

        def _send_video(self, body: bool) -> None:
            size = server.video.stat().st_size
            start, end = 0, size - 1
            m = _RANGE.fullmatch(self.headers.get("Range", "").strip())
            if m and (m.group(1) or m.group(2)):
                if m.group(1):
                    start, end = int(m.group(1)), min(int(m.group(2) or size - 1), size - 1)
                else:  # "bytes=-N": the last N bytes
                    start = max(0, size - int(m.group(2)))
                if start > end:
                    self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(HTTPStatus.PARTIAL_CONTENT)
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            else:
                self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", mimetypes.guess_type(server.video.name)[0] or "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            if body:
                with open(server.video, "rb") as f:
                    f.seek(start)
                    remaining = end - start + 1
                    while remaining > 0:
                        chunk = f.read(min(remaining, 1 << 20))
                        if not chunk:
                            break
                        self.wfile.write(chunk)
                        remaining -= len(chunk)

        def _send_file(self, file: Path, body: bool) -> None:
            self._send(file.read_bytes(), _TYPES.get(file.suffix, mimetypes.guess_type(file.name)[0] or "application/octet-stream"), body)

        def _send(self, data: bytes, content_type: str, body: bool) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            # One server per sequence, maybe on the same port as the last one: never reuse a copy.
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            if body:
                self.wfile.write(data)

        def log_message(self, format: str, *args) -> None:  # noqa: A002
            pass  # the terminal shows the URL and errors, not every request

    return Handler
