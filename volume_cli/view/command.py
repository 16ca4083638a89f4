"""The `volume view` command's work, apart from its options (cli.py): open the sequence, then serve
it until Ctrl-C or export it. Errors a user can fix are ``ViewError`` with one line to print."""

from __future__ import annotations

import json
import signal
import sys
import threading
import webbrowser
from pathlib import Path

from volume_cli.formats import Sequence, load_sequence


class ViewError(Exception):
    pass


def open_sequence(path: Path) -> Sequence:
    try:
        sequence = load_sequence(path)
    except (ValueError, OSError) as e:
        raise ViewError(str(e)) from e
    if not sequence.frames:
        raise ViewError(f"{path}: the sequence has no frames yet (is convert still running?)")
    try:  # a frame that cannot be read is better reported now than as a blank page
        sequence.read_frame(0)
    except (ValueError, OSError) as e:
        raise ViewError(str(e)) from e
    return sequence


def serve(sequence: Sequence, *, port: int, open_browser: bool, loop: bool, side_by_side: bool, as_json: bool, quiet: bool) -> None:
    """Serve until Ctrl-C (or SIGTERM); prints the URL (or, with ``as_json``, one JSON line)."""
    from volume_cli.view.server import PortInUseError, ViewServer

    try:
        server = ViewServer(sequence, port=port, loop=loop, side_by_side=side_by_side)
    except PortInUseError as e:
        raise ViewError(f"{e.strerror}; choose another with --port, or leave --port out for a free one") from e
    except OSError as e:
        raise ViewError(f"cannot listen on 127.0.0.1:{port}: {e.strerror or e}") from e
    url = server.url
    stop = threading.Event()
    previous = None
    try:  # from here on Ctrl-C (KeyboardInterrupt) or SIGTERM (the event) is the normal way to stop
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        thread = server.start_in_thread()
        if side_by_side and server.video is None and not quiet:
            print("Warning: --side-by-side: the source video is not readable here; showing the splats alone", file=sys.stderr)
        if as_json:
            print(json.dumps({"url": url, "port": server.httpd.server_address[1], "frames": len(sequence.frames),
                              "video": server.video is not None}), flush=True)
        else:
            print(f"Serving {len(sequence.frames)} frames at {url} (Ctrl-C to stop)", flush=True)
        if open_browser and not webbrowser.open(url):
            print(f"Warning: could not open a browser here; open {url} in one", file=sys.stderr, flush=True)
        while not stop.wait(0.5) and thread.is_alive():
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if not as_json and not quiet:
        print("Stopped.", file=sys.stderr)


def export(sequence: Sequence, folder: Path, *, loop: bool, side_by_side: bool, as_json: bool, quiet: bool) -> dict:
    from volume_cli.progress import RichProgress
    from volume_cli.view.export import ExportFolderError, export_view

    try:
        summary = export_view(sequence, folder, loop=loop, side_by_side=side_by_side,
                              progress=RichProgress(enabled=not (as_json or quiet)))
    except ExportFolderError as e:
        raise ViewError(str(e)) from e
    except OSError as e:
        raise ViewError(f"{e.filename or folder}: {e.strerror or e}") from e
    if side_by_side and not summary["video"] and not quiet:
        print("Warning: --side-by-side: the source video is not readable here; exported the splats alone", file=sys.stderr)
    return summary
