"""`volume view`: the .spz frames, the page's description, the server, the static export, and the page
itself in a real headless browser (Debian's chromium driven by playwright, WebGL2 in software).

The browser tests use a small synthetic sequence whose layout makes orientation visible: a grey
ball (the head) at a known centre, a red blob above it, a blue one below, and a green one that moves
from the left to the right over the clip. In OpenCV's frame "above" is -y and "right" is +x, so a
page that forgot to turn the files upright, or mirrored them, puts the colours in the wrong places.
They skip when playwright or chromium is missing, unless VOLUME_REQUIRE_BROWSER=1 (CI sets it).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from volume_cli.cli import app
from volume_cli.formats import (
    FrameRecord,
    Intrinsics,
    PredictorInfo,
    SequenceManifest,
    SourceInfo,
    load_sequence,
    read_splats,
    write_manifest,
    write_splats,
)
from volume_cli.formats.spz import decode_spz, encode_spz
from volume_cli.gaussians import Gaussians, rgb_to_sh_dc
from volume_cli.view.page import BACKGROUND, view_description
from volume_cli.view.server import ViewServer

from realdata import REAL, needs_real

VOLUME = Path(sys.executable).with_name("volume")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SWIFTSHADER = ["--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
BACKGROUND_RGB = np.array([int(BACKGROUND[i : i + 2], 16) for i in (1, 3, 5)])
CENTRE = np.array([0.03, -0.02, 0.5])  # the synthetic head, OpenCV frame, metres
FPS = 10
N_FRAMES = 12
runner = CliRunner()


# --- the synthetic sequence ----------------------------------------------------------------------


def _blob(centre, radius: float, rgb, n: int, generator: torch.Generator) -> Gaussians:
    directions = torch.randn(n, 3, generator=generator, dtype=torch.float64)
    directions /= directions.norm(dim=1, keepdim=True)
    r = radius * torch.rand(n, 1, generator=generator, dtype=torch.float64) ** (1 / 3)
    return Gaussians(
        means=(torch.tensor(centre) + directions * r).float(),
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(n, 1),
        log_scales=torch.full((n, 3), float(np.log(radius * 0.12))),
        opacity_logits=torch.full((n,), 3.0),
        sh=rgb_to_sh_dc(torch.tensor([rgb], dtype=torch.float32)).repeat(n, 1)[:, None, :],
    )


def synthetic_frame(i: int, n: int = N_FRAMES) -> Gaussians:
    g = torch.Generator().manual_seed(i)
    front = CENTRE + [0.0, 0.0, -0.075]  # the blobs sit in front of the ball
    x = -0.05 + 0.1 * i / (n - 1)
    return Gaussians.concatenate([
        _blob(CENTRE, 0.07, (0.6, 0.6, 0.6), 1500, g),
        _blob(front + [0.0, -0.045, 0.0], 0.015, (1.0, 0.0, 0.0), 250, g),
        _blob(front + [0.0, 0.045, 0.0], 0.015, (0.0, 0.0, 1.0), 250, g),
        _blob(front + [x, 0.0, -0.01], 0.012, (0.0, 1.0, 0.0), 200, g),
    ])


def write_synthetic_sequence(folder: Path, n: int = N_FRAMES, video: Path | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    f = 502.3
    K = [[f, 0.0, 320.0], [0.0, f, 240.0], [0.0, 0.0, 1.0]]
    records = []
    for i in range(n):
        g = synthetic_frame(i, n)
        name = f"frame_{i:06d}.ply"
        write_splats(folder / name, g, "ply")
        records.append(FrameRecord(
            index=i, file=name, time_s=i / FPS, num_splats=g.count, status="ok",
            rotation=np.eye(3).tolist(), virtual_K=K, face_box=[200.0, 140.0, 440.0, 380.0],
            head_center=CENTRE.tolist(), distance_m=float(np.linalg.norm(CENTRE)),
        ))
    manifest = SequenceManifest(
        source=SourceInfo(path=str(video or folder / "synthetic.mp4"), kind="video", fps=FPS, frame_count=n, rotation_deg=0),
        image_size=[640, 480], intrinsics=Intrinsics(K=K, focal_px=f, fov_deg=None), crop_size=64,
        predictor=PredictorInfo(name="synthetic", weights_sha256=None), splat_format="ply",
        complete=True, frames=records,
    )
    write_manifest(folder, manifest)
    return folder


@pytest.fixture(scope="module")
def synthetic_seq(tmp_path_factory) -> Path:
    return write_synthetic_sequence(tmp_path_factory.mktemp("view") / "seq")


# --- .spz -------------------------------------------------------------------------------------------


def test_spz_round_trip_within_the_stated_budget():
    gen = torch.Generator().manual_seed(0)
    n = 3000
    g = Gaussians(
        means=torch.randn(n, 3, generator=gen) * 0.3,
        quats=torch.randn(n, 4, generator=gen),
        log_scales=-2.0 - 6.0 * torch.rand(n, 3, generator=gen),
        opacity_logits=2.0 * torch.randn(n, generator=gen),
        sh=torch.rand(n, 1, 3, generator=gen) * 4.0 - 2.0,
    )
    data = encode_spz(g)
    assert data == encode_spz(g), "the same splats must give the same bytes"
    d = decode_spz(data)
    assert d.count == n
    assert (d.means - g.means).abs().max() <= 0.5 / 4096 + 1e-7
    assert (d.opacities() - g.opacities()).abs().max() <= 0.5 / 255 + 1e-6
    assert (d.sh - g.sh).abs().max() <= 0.5 / 255 / 0.15 + 1e-5
    assert (d.log_scales - g.log_scales).abs().max() <= 1 / 32 + 1e-6
    # q and -q are one rotation; compare the rotation matrices' action instead of signs.
    q, dq = g.unit_quats(), d.unit_quats()
    assert ((q * dq).sum(1).abs() > 1 - 2e-5).all()


def test_spz_quaternion_layout_against_hand_made_codes():
    # (w, x, y, z) = (0.9, 0.1, -0.3, 0.3), a unit quaternion: w is the largest, so it is dropped
    # (index 3 in the format's x, y, z, w order) and x, y, z follow in 10-bit fields, sign bit
    # first, magnitude round(|q| / sqrt(1/2) * 511): 72, 217, 217.
    g = Gaussians(means=torch.zeros(1, 3), quats=torch.tensor([[0.9, 0.1, -0.3, 0.3]]), log_scales=torch.zeros(1, 3),
                  opacity_logits=torch.zeros(1), sh=torch.zeros(1, 1, 3))
    raw = gzip.decompress(encode_spz(g))
    assert len(raw) == 16 + 9 + 1 + 3 + 3 + 4
    code = int.from_bytes(raw[-4:], "little")
    assert code == (((3 << 10 | 72) << 10 | (1 << 9 | 217)) << 10) | 217
    assert torch.allclose(decode_spz(encode_spz(g)).unit_quats(), g.unit_quats(), atol=2e-3)


def test_spz_refuses_what_it_cannot_store():
    g = synthetic_frame(0)
    far = g.map(lambda t: t.clone())
    far.means[0, 0] = 3000.0
    with pytest.raises(ValueError, match="1 of .* splats lie beyond"):
        encode_spz(far)
    bad = g.map(lambda t: t.clone())
    bad.means[:3, 1] = float("nan")
    with pytest.raises(ValueError, match="3 of"):
        encode_spz(bad)
    with pytest.raises(ValueError, match="gzip"):
        decode_spz(b"not a file")


# --- the page's description and the server ---------------------------------------------------------


def test_view_description(synthetic_seq):
    d = view_description(load_sequence(synthetic_seq), loop=False, video=None, side_by_side=True)
    assert [f["t"] for f in d["frames"]] == pytest.approx([i / FPS for i in range(N_FRAMES)])
    assert d["frames"][3]["url"] == "frames/000003.spz" and d["frames"][3]["splats"] == 2200
    assert d["end_s"] == pytest.approx((N_FRAMES - 1) / FPS + 1 / FPS)
    assert d["target"] == pytest.approx(CENTRE.tolist())
    assert d["loop"] is False and d["video"] is None and d["side_by_side"] is False  # no video, none shown
    assert d["intrinsics"]["fy"] == pytest.approx(502.3) and d["image_size"] == [640, 480]


def test_view_description_of_a_single_file(synthetic_seq):
    d = view_description(load_sequence(synthetic_seq / "frame_000000.ply"), loop=True, video=None, side_by_side=False)
    assert len(d["frames"]) == 1 and d["frames"][0]["splats"] > 0
    # the orbit centre is the middle of the opaque splats: the ball's centre, give or take the blobs
    assert np.allclose(d["target"], CENTRE, atol=0.03)


def _get(url: str, headers: dict | None = None):
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as response:
        return response.status, dict(response.headers), response.read()


def test_server_routes(synthetic_seq, tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(bytes(range(256)) * 40)
    seq = load_sequence(write_synthetic_sequence(tmp_path / "seq", n=3, video=video))
    server = ViewServer(seq, port=0, side_by_side=True)
    server.start_in_thread()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        status, headers, body = _get(server.url)
        assert status == 200 and b'src="assets/viewer.js"' in body
        status, headers, _ = _get(server.url + "assets/vendor/three-spark.js")
        assert headers["Content-Type"].startswith("text/javascript")  # module scripts need a JS type
        status, _, body = _get(server.url + "view.json")
        description = json.loads(body)
        assert description["video"] == "source.mp4" and description["side_by_side"] is True
        _, _, body = _get(server.url + "frames/000002.spz")
        sent, stored = decode_spz(body), read_splats(seq.frames[2].path)
        assert sent.count == stored.count and (sent.means - stored.means).abs().max() < 1.3e-4
        # the video by byte ranges, as a browser seeks it
        status, headers, body = _get(server.url + "source.mp4", {"Range": "bytes=100-199"})
        assert status == 206 and body == video.read_bytes()[100:200]
        assert headers["Content-Range"] == f"bytes 100-199/{video.stat().st_size}"
        for path in ("frames/000003.spz", "assets/../server.py", "assets/%2e%2e/server.py", "etc/passwd", "sequence.json"):
            with pytest.raises(urllib.error.HTTPError) as e:
                _get(server.url + path)
            assert e.value.code == 404, path
    finally:
        server.shutdown()


def test_port_in_use_is_a_one_line_error(synthetic_seq):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["view", str(synthetic_seq), "--port", str(port), "--no-open"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [f"Error: port {port} is already in use on 127.0.0.1; choose another with --port, or leave --port out for a free one"]


def test_bad_sequences_are_one_line_errors(synthetic_seq, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(synthetic_seq, broken)
    (broken / "frame_000004.ply").unlink()
    garbled = tmp_path / "garbled"
    shutil.copytree(synthetic_seq, garbled)
    (garbled / "frame_000000.ply").write_bytes(b"ply\nformat nonsense\n")
    for path, match in [(tmp_path / "nowhere", "does not exist"), (tmp_path, "no sequence.json"),
                        (broken, "1 frame files listed in sequence.json are missing"), (garbled, "frame_000000.ply")]:
        out = tmp_path / f"export_{path.name}"
        result = runner.invoke(app, ["view", str(path), "--export", str(out)])
        assert result.exit_code == 1, (path, result.stdout)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and match in lines[0], (path, lines)
        assert not out.exists(), "nothing may be written for a sequence that cannot be shown"


def test_export_folder_rules(synthetic_seq, tmp_path):
    out = tmp_path / "viewer"
    result = runner.invoke(app, ["view", str(synthetic_seq), "--export", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["frames"] == N_FRAMES and summary["video"] is False
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert names == sorted(
        ["index.html", "view.json", "assets/viewer.js", "assets/viewer.css", "assets/vendor/three-spark.js",
         "assets/vendor/LICENSES.txt", "assets/vendor/VERSIONS.txt"] + [f"frames/{i:06d}.spz" for i in range(N_FRAMES)]
    )
    assert decode_spz((out / "frames/000005.spz").read_bytes()).count == 2200
    # an earlier export is replaced, shorter: its extra frames go
    short = write_synthetic_sequence(tmp_path / "short", n=4)
    assert runner.invoke(app, ["view", str(short), "--export", str(out)]).exit_code == 0
    assert sorted(p.name for p in (out / "frames").iterdir()) == [f"{i:06d}.spz" for i in range(4)]
    # any other non-empty folder is refused, untouched
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"jpeg")
    result = runner.invoke(app, ["view", str(synthetic_seq), "--export", str(other)])
    assert result.exit_code == 1 and "not empty" in result.stderr
    assert [p.name for p in other.iterdir()] == ["holiday.jpg"]


def _default_sigint() -> None:
    # A test suite started as a background job of a non-interactive shell inherits SIGINT ignored,
    # and Python then never turns it into KeyboardInterrupt: the Ctrl-C tests would time out.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_view(*args, open_browser: bool = False, env: dict | None = None) -> tuple[subprocess.Popen, dict]:
    process = subprocess.Popen([str(VOLUME), "view", *map(str, args), "--json"] + ([] if open_browser else ["--no-open"]),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               preexec_fn=_default_sigint)
    line = process.stdout.readline()
    assert line, process.stderr.read()
    return process, json.loads(line)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serving_stops_cleanly_on_ctrl_c_and_sigterm(synthetic_seq, sig):
    process, started = _start_view(synthetic_seq)
    try:
        assert started["frames"] == N_FRAMES and started["url"] == f"http://127.0.0.1:{started['port']}/"
        assert _get(started["url"] + "view.json")[0] == 200
        process.send_signal(sig)
        assert process.wait(timeout=10) == 0
        assert process.stdout.read() == "" and process.stderr.read() == ""  # --json: nothing more
    finally:
        process.kill()


def test_a_browser_that_cannot_be_opened_is_one_warning_and_serving_goes_on(synthetic_seq):
    # webbrowser runs $BROWSER when it is set; "false" fails like a desktop without a browser.
    process, started = _start_view(synthetic_seq, open_browser=True, env={**os.environ, "BROWSER": "false"})
    try:
        # the warning comes after the URL line, once the browser command has failed
        ready, _, _ = select.select([process.stderr], [], [], 30)
        assert ready, "no warning within 30 s"
        assert process.stderr.readline().rstrip("\n") == f"Warning: could not open a browser here; open {started['url']} in one"
        assert _get(started["url"] + "view.json")[0] == 200  # still serving
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        assert process.stderr.read() == ""
    finally:
        process.kill()


# --- the page in a real browser --------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or CHROMIUM is None:
        if os.environ.get("VOLUME_REQUIRE_BROWSER") == "1":
            pytest.fail("VOLUME_REQUIRE_BROWSER=1 but playwright or chromium is missing (.ci/run installs both)")
        pytest.skip("needs playwright (pip) and chromium (Debian) for the browser tests")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=SWIFTSHADER)
        yield b
        b.close()


class Page:
    """A browser page on a viewer URL, recording page errors and every request it makes."""

    def __init__(self, browser, url: str):
        self.page = browser.new_page(viewport={"width": 800, "height": 560})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(url)
        self.page.wait_for_function("window.volumeView && window.volumeView.test.ready", timeout=120_000)

    def js(self, expression: str):
        return self.page.evaluate(expression)

    def state(self) -> dict:
        return self.js("({...window.volumeView.state(), ...window.volumeView.test})")

    def wait_shown(self, frame: int) -> None:
        self.page.wait_for_function(f"window.volumeView.state().shown === {frame}", timeout=60_000)
        # Spark sorts a new set of splats on a worker and draws it a frame or two later.
        self.page.wait_for_function("window.volumeView.test.ticks >= window.volumeView.test.shownAtTick + 4", timeout=60_000)

    def canvas_pixels(self) -> np.ndarray:
        """The canvas as RGB [H, W, 3] uint8, CSS pixels."""
        import cv2

        png = self.page.locator("#canvas").screenshot()
        bgr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        return bgr[:, :, ::-1].astype(np.int32)

    def close(self) -> None:
        self.page.close()


def colour_centre(rgb: np.ndarray, channel: int) -> tuple[float, float] | None:
    """Mean (x, y) of the pixels strongly of one primary colour, None if there are few."""
    others = [c for c in range(3) if c != channel]
    mask = (rgb[:, :, channel] > 150) & (rgb[:, :, others[0]] < 90) & (rgb[:, :, others[1]] < 90)
    if mask.sum() < 30:
        return None
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


def check_page(page: Page, origin: str) -> None:
    """What every page must do, served by us or by any static server."""
    assert page.errors == [] and page.state()["errors"] == []
    outside = [u for u in page.requests if not (u.startswith(origin) or u.startswith(("blob:", "data:")))]
    assert outside == [], f"requests leaving {origin}: {outside}"
    page.js("window.volumeView.pause(); window.volumeView.seek(0)")
    page.wait_shown(0)
    rgb = page.canvas_pixels()
    h, w, _ = rgb.shape
    st = page.state()
    # The head's centre projects to the middle of the view (the camera starts at the input camera,
    # looking at the head), and the head is drawn there and fills a good part of it.
    cx, cy = page.js(f"window.volumeView.project({CENTRE.tolist()})")
    assert abs(cx - w / 2) < 3 and abs(cy - h / 2) < 3, (cx, cy, w, h)
    differs = np.abs(rgb - BACKGROUND_RGB).sum(2) > 40
    assert differs[int(cy) - 10 : int(cy) + 10, int(cx) - 10 : int(cx) + 10].mean() > 0.9
    assert differs.mean() > 0.05, f"only {differs.mean():.1%} of the view shows the person"
    # Upright and not mirrored: red (above the head in the files, -y) is above blue on screen, and
    # the green blob starts on the left.
    red, blue, green = colour_centre(rgb, 0), colour_centre(rgb, 2), colour_centre(rgb, 1)
    assert red and blue and green, (red, blue, green)
    assert red[1] < cy < blue[1]
    assert green[0] < cx
    # The slider seeks: to the last frame, where the green blob is right of the centre.
    page.page.locator("#time").fill(str((N_FRAMES - 1) / FPS + 0.01))
    page.wait_shown(N_FRAMES - 1)
    assert page.state()["frame"] == N_FRAMES - 1
    green_last = colour_centre(page.canvas_pixels(), 1)
    assert green_last and green_last[0] > cx + 20, green_last
    # Playing (from the start) changes the picture.
    page.js("window.volumeView.seek(0)")
    page.page.locator("#play").click()
    before = page.state()["framesShown"]
    page.page.wait_for_function(f"window.volumeView.test.framesShown >= {before + 3}", timeout=60_000)
    deadline = time.monotonic() + 30
    while np.array_equal(page.canvas_pixels(), rgb):  # software WebGL draws a frame or two a second
        assert time.monotonic() < deadline, "the picture did not change while playing"
    assert page.errors == [] and page.state()["errors"] == []


def test_page_served_by_volume_view(browser, synthetic_seq):
    server = ViewServer(load_sequence(synthetic_seq), port=0)
    server.start_in_thread()
    page = Page(browser, server.url)
    try:
        assert page.state()["playing"] is True  # starts on load
        check_page(page, server.url)
    finally:
        page.close()
        server.shutdown()


def test_page_of_an_export_served_by_http_server(browser, synthetic_seq, tmp_path):
    out = tmp_path / "viewer"
    assert runner.invoke(app, ["view", str(synthetic_seq), "--export", str(out), "--no-loop"]).exit_code == 0
    process = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", "0", "-d", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = re.search(r"port (\d+)", process.stdout.readline()).group(1)
        origin = f"http://127.0.0.1:{port}/"
        page = Page(browser, origin)
        assert page.state()["loop"] is False
        check_page(page, origin)
        page.close()
    finally:
        process.kill()


def test_no_loop_stops_at_the_end(browser, tmp_path):
    seq = write_synthetic_sequence(tmp_path / "seq", n=4)
    server = ViewServer(load_sequence(seq), port=0, loop=False)
    server.start_in_thread()
    page = Page(browser, server.url)
    try:
        page.page.wait_for_function("!window.volumeView.state().playing", timeout=60_000)
        st = page.state()
        assert st["frame"] == 3 and st["clock"] == pytest.approx(0.4, abs=1e-3)
        assert page.page.locator("#play").inner_text() == "Play"
    finally:
        page.close()
        server.shutdown()


def test_playback_waits_for_a_frame_that_is_late(browser, synthetic_seq):
    """A frame that has not arrived when its time comes is waited for ("Buffering..."), not
    skipped: frame 6 is held back by the server until the page has been waiting on it; at a
    quarter speed the clock visits every frame, so the page shows 5, then 6, then 7."""
    import threading

    server = ViewServer(load_sequence(synthetic_seq), port=0)
    get, release = server.frames.get, threading.Event()

    def held_back(i: int) -> bytes:
        if i == 6:
            release.wait(timeout=120)
        return get(i)

    server.frames.get = held_back
    server.start_in_thread()
    page = Page(browser, server.url)
    try:
        page.js("window.volumeView.pause()")
        page.page.select_option("#speed", "0.25")
        page.js("window.volumeView.seek(0); window.volumeView.test.shownLog.length = 0; window.volumeView.play()")
        # the clock reaches frame 6's time and holds there while the frame is missing
        page.page.wait_for_function("window.volumeView.test.stalls > 3 && window.volumeView.state().frame === 6", timeout=90_000)
        held = page.state()
        assert held["shown"] == 5 and held["clock"] == pytest.approx(0.6, abs=0.07), held
        assert page.page.locator("#status").inner_text() == "Buffering..."
        release.set()
        page.page.wait_for_function("window.volumeView.test.shownLog.includes(7)", timeout=90_000)
        log = page.state()["shownLog"]
        assert 6 in log and log.index(5) < log.index(6) < log.index(7), str((log, page.state()["errors"], page.state()["clock"]))
        assert page.state()["errors"] == []
    finally:
        release.set()
        page.close()
        server.shutdown()


@pytest.fixture(scope="module")
def hopper_seq(tmp_path_factory) -> Path:
    """A real convert: 4 frames of the bundled clip at the smallest crop."""
    out = tmp_path_factory.mktemp("hopper") / "splats"
    clip = Path(__file__).resolve().parents[1] / "examples" / "hopper.mp4"
    result = runner.invoke(app, ["convert", str(clip), "-o", str(out), "--max-frames", "4", "--size", "64", "--quiet"])
    assert result.exit_code == 0, result.stderr
    return out


def test_the_renderer_reads_our_spz_as_it_reads_the_ply(browser, hopper_seq):
    """Spark decodes a frame's .spz (ours) and its PLY (the 3DGS layout) to the same splats: same
    order, centres, scales, rotations, opacities and colours within the .spz budget."""
    ply = (hopper_seq / "frame_000000.ply").read_bytes()
    server = ViewServer(load_sequence(hopper_seq), port=0)
    server.start_in_thread()
    page = Page(browser, server.url)
    try:
        splats = page.page.evaluate("""async (plyBase64) => {
            const { SplatMesh, SplatFileType } = await import("./assets/vendor/three-spark.js");
            const ply = Uint8Array.from(atob(plyBase64), (c) => c.charCodeAt(0));
            const spz = new Uint8Array(await (await fetch("frames/000000.spz")).arrayBuffer());
            const read = async (fileBytes, fileType) => {
                const mesh = new SplatMesh({ fileBytes, fileType });
                await mesh.initialized;
                const rows = [];
                mesh.forEachSplat((i, c, s, q, o, col) => {
                    if (i % 97 === 0) rows.push([c.x, c.y, c.z, s.x, s.y, s.z, q.x, q.y, q.z, q.w, o, col.r, col.g, col.b]);
                });
                return rows;
            };
            return [await read(ply, SplatFileType.PLY), await read(spz, SplatFileType.SPZ)];
        }""", base64.b64encode(ply).decode())
    finally:
        page.close()
        server.shutdown()
    from_ply, from_spz = (np.array(rows) for rows in splats)
    assert from_ply.shape == from_spz.shape and len(from_ply) > 50
    # metres; Spark keeps centres as float16 (0.24 mm steps at 0.4 m), both copies rounded
    assert np.abs(from_ply[:, :3] - from_spz[:, :3]).max() < 1e-3
    # log-scales: Spark packs them again in its own 8-bit steps of ~0.083, so one step apart at most
    assert np.abs(np.log(from_ply[:, 3:6]) - np.log(from_spz[:, 3:6])).max() < 0.09
    same_rotation = np.abs((from_ply[:, 6:10] * from_spz[:, 6:10]).sum(1))
    assert same_rotation.min() > 0.995, same_rotation.min()
    assert np.abs(from_ply[:, 10] - from_spz[:, 10]).max() < 0.01
    assert np.abs(from_ply[:, 11:] - from_spz[:, 11:]).max() < 0.02


@needs_real
def test_real_sequence_with_its_video_beside(browser, hopper_seq):
    """A real convert: each frame's head centre, projected with the page's camera, lands on the
    drawn head; the source video plays beside it, in step."""
    out = hopper_seq
    manifest = json.loads((out / "sequence.json").read_text())
    server = ViewServer(load_sequence(out), port=0, side_by_side=True)
    server.start_in_thread()
    page = Page(browser, server.url)
    try:
        assert page.errors == []
        page.js("window.volumeView.pause(); window.volumeView.seek(0)")
        page.wait_shown(0)
        rgb = page.canvas_pixels()
        x, y = page.js(f"window.volumeView.project({manifest['frames'][0]['head_center']})")
        differs = np.abs(rgb - BACKGROUND_RGB).sum(2) > 40
        assert differs[int(y) - 8 : int(y) + 8, int(x) - 8 : int(x) + 8].mean() > 0.9
        assert differs.mean() > 0.1
        st = page.state()
        assert st["videoOn"] is True and page.page.locator("#source").is_visible()
        page.js("window.volumeView.seek(0.1)")
        page.page.wait_for_function("Math.abs(document.getElementById('source').currentTime - 0.1) < 0.05", timeout=30_000)
    finally:
        page.close()
        server.shutdown()


# --- the same page in Firefox --------------------------------------------------------------------

FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox")
XVFB_RUN = shutil.which("xvfb-run")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def firefox(tmp_path_factory):
    """Firefox on a virtual screen (Xvfb: its WebGL is Mesa's llvmpipe; headless Firefox has none
    here), driven by Marionette, its own remote protocol (marionette_driver from PyPI)."""
    try:
        with warnings.catch_warnings():  # it still imports telnetlib, deprecated in Python 3.11
            warnings.simplefilter("ignore", DeprecationWarning)
            from marionette_driver.marionette import Marionette
    except ImportError:
        Marionette = None
    if Marionette is None or FIREFOX is None or XVFB_RUN is None:
        if os.environ.get("VOLUME_REQUIRE_BROWSER") == "1":
            pytest.fail("VOLUME_REQUIRE_BROWSER=1 but firefox, xvfb-run or marionette_driver is missing (.ci/run installs them)")
        pytest.skip("needs firefox-esr and xvfb (Debian) and marionette_driver (pip)")
    profile = tmp_path_factory.mktemp("firefox-profile")
    port = _free_port()
    (profile / "user.js").write_text(f'user_pref("marionette.port", {port});\nuser_pref("webgl.force-enabled", true);\n')
    process = subprocess.Popen(
        [XVFB_RUN, "-a", "-s", "-screen 0 1280x800x24", FIREFOX, "--marionette", "--no-remote", "--profile", str(profile),
         "--width", "900", "--height", "640"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        client = Marionette(host="127.0.0.1", port=port)
        client.raise_for_port(timeout=90, check_process_status=False)
        client.start_session()
        yield client
        client.delete_session()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def _page_eval(client, expression: str):
    """Evaluate in the page's own scope (Marionette's scripts see the page through a wrapper)."""
    return json.loads(client.execute_script(f"return window.wrappedJSObject.eval({json.dumps(f'JSON.stringify({expression})')})"))


def test_page_in_firefox(firefox, synthetic_seq):
    import cv2

    server = ViewServer(load_sequence(synthetic_seq), port=0)
    server.start_in_thread()
    try:
        firefox.navigate(server.url)
        deadline = time.monotonic() + 90
        while not _page_eval(firefox, "!!(window.volumeView && window.volumeView.test.ready)"):
            assert time.monotonic() < deadline, "the page did not show a frame in Firefox"
            time.sleep(0.5)
        _page_eval(firefox, "window.volumeView.pause() || window.volumeView.seek(0) || 0")
        deadline = time.monotonic() + 60
        while not _page_eval(firefox, "window.volumeView.state().shown === 0 && window.volumeView.test.ticks > window.volumeView.test.shownAtTick + 4"):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert _page_eval(firefox, "window.volumeView.test.errors") == []
        png = firefox.screenshot(element=firefox.find_element("id", "canvas"), format="binary")
        rgb = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.int32)
        h, w, _ = rgb.shape
        differs = np.abs(rgb - BACKGROUND_RGB).sum(2) > 40
        assert differs[h // 2 - 10 : h // 2 + 10, w // 2 - 10 : w // 2 + 10].mean() > 0.9
        red, blue = colour_centre(rgb, 0), colour_centre(rgb, 2)
        assert red and blue and red[1] < h / 2 < blue[1], (red, blue)
    finally:
        server.shutdown()
