"""``volume convert A B C -o DIR --ray`` (volume_cli/batch/ray_cluster.py): each clip a Ray task.

The Ray tests share one local cluster of two worker CPUs (``ray start --head``, started once for
this file: about 5 s) and run real, tiny conversions. They skip only where ray is not installed;
``make install`` installs it (the ``cluster`` extra), so CI runs them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from plyfile import PlyData
from typer.testing import CliRunner

from volume_cli.batch import ray_cluster
from volume_cli.batch.ray_cluster import KILL_WORKER_HOOK, attempt_args, gpus_per_clip
from volume_cli.cli import app

from realdata import REAL, SELFIE, needs_real

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hopper.mp4"
NO_FACE = REAL / "no_face_960x540.mp4"
TINY = ["--max-frames", "2", "--size", "64"]
# Long enough for a worker to die in the middle: 24 frames written one at a time (~0.1 s each).
LONGER = ["--max-frames", "24", "--size", "64", "--batch-size", "1"]
BIN = Path(sys.executable).parent
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason='ray is not installed (pip install "volume[cluster]")')


def _convert(*args: str):
    return CliRunner().invoke(app, ["convert", *map(str, args)], catch_exceptions=False)


# --- without a cluster ---------------------------------------------------------------------------


def test_without_ray_the_option_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr(ray_cluster, "ray_installed", lambda: False)
    result = _convert(SELFIE, EXAMPLE, "-o", tmp_path / "out", "--ray")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines() == ['Error: --ray needs Ray, which is not installed: pip install "volume[cluster]" (or pip install ray)']
    assert not (tmp_path / "out").exists()


def test_jobs_is_refused_beside_ray(tmp_path):
    result = _convert(SELFIE, EXAMPLE, "-o", tmp_path / "out", "--ray", "--jobs", "2")
    assert result.exit_code == 2 and "--jobs is for this machine" in result.stderr


@pytest.mark.parametrize("device, cluster_gpus, gpus", [
    ("cuda", 0, 1),  # asked for: Ray waits for a GPU node rather than run it on a CPU
    ("auto", 2, 1),
    ("auto", 0, 0),
    ("cpu", 2, 0),
])
def test_a_gpu_per_clip_when_the_predictor_runs_on_cuda(device, cluster_gpus, gpus):
    assert gpus_per_clip(device, cluster_gpus) == gpus


def test_a_retry_resumes_the_folder_its_dead_attempt_began(tmp_path):
    out = tmp_path / "clip"
    args = ["--size", "64", "--overwrite"]
    assert attempt_args(args, out, fresh=True) == args  # first attempt: as given
    out.mkdir()
    (out / ".frame_000003.ply.tmp-999999").write_bytes(b"half")  # the dead attempt's unfinished write
    assert attempt_args(args, out, fresh=True) == ["--size", "64", "--resume"]
    assert list(out.iterdir()) == []
    # A folder that held a sequence before the batch is the user's: its options stay as given.
    assert attempt_args(args, out, fresh=False) == args
    assert attempt_args(["--resume"], out, fresh=True) == ["--resume"]


# --- on a local cluster of two workers ------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The address of a two-CPU Ray cluster on this machine, for every Ray test here. Its token
    authentication is on, with a token of its own given to it and to the tests' drivers in the
    environment: Ray 2.5x turns tokens on for `ray start` wherever ~/.ray/auth_token exists, and
    its drivers then need RAY_AUTH_MODE=token; this way neither depends on that file."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("ray") / "ray_start.log"
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env = dict(os.environ, **auth)
    with open(log, "w") as f:
        head = subprocess.Popen([str(BIN / "ray"), "start", "--head", "--num-cpus", "2", "--port", str(port),
                                 "--include-dashboard", "false", "--disable-usage-stats", "--block"],
                                stdout=f, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while "--block" not in log.read_text():  # printed once the head is up
            assert head.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        with pytest.MonkeyPatch.context() as mp:
            for name, value in auth.items():
                mp.setenv(name, value)
            yield f"127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGTERM)  # --block stops the cluster's processes on SIGTERM
        head.wait(timeout=60)


def complete_folder(folder: Path, frames: int) -> dict:
    """sequence.json of a finished clip, after checking that it lists frames 0..frames-1 once each,
    that exactly those files are on disk (no temporary ones) and that each file is whole."""
    manifest = json.loads((folder / "sequence.json").read_text())
    assert manifest["complete"] is True
    assert [f["index"] for f in manifest["frames"]] == list(range(frames))
    assert sorted(p.name for p in folder.iterdir()) == sorted([f["file"] for f in manifest["frames"]] + ["sequence.json"])
    for record in manifest["frames"]:
        assert PlyData.read(str(folder / record["file"]))["vertex"].count == record["num_splats"] > 0
    return manifest


@needs_real
@needs_ray
def test_three_clips_one_without_a_face_on_two_workers(cluster, tmp_path):
    result = _convert(SELFIE, NO_FACE, EXAMPLE, "-o", tmp_path / "out", *TINY, "--ray-address", cluster, "--json")
    assert result.exit_code == 1, result.stderr
    summary = json.loads(result.stdout)
    status = {Path(c["source"]).name: c["status"] for c in summary["clips"]}
    assert status == {SELFIE.name: "converted", NO_FACE.name: "failed", EXAMPLE.name: "converted"}
    assert (summary["converted"], summary["failed"], summary["complete"]) == (2, 1, False)
    error = next(c for c in summary["clips"] if c["status"] == "failed")
    assert "no face" in error["error"] and error["exit_code"] == 1
    assert not Path(error["output"]).exists()
    for c in summary["clips"]:
        if c["status"] == "converted":
            complete_folder(Path(c["output"]), 2)
            assert c["result"]["frames_written"] == 2


@needs_real
@needs_ray
def test_a_worker_killed_in_the_middle_of_a_clip_is_retried_and_the_folder_ends_complete(cluster, tmp_path, monkeypatch):
    # The first attempt's worker SIGKILLs itself once sequence.json lists a frame: about 1 s into
    # the writing (the list is rewritten every second), of the 4 s that 40 frames take.
    monkeypatch.setenv(KILL_WORKER_HOOK, "1")
    result = _convert(SELFIE, "-o", tmp_path / "out", *LONGER, "--max-frames", "40", "--ray-address", cluster, "--json")
    assert result.exit_code == 0, result.stderr
    clip = json.loads(result.stdout)["clips"][0]
    assert clip["status"] == "converted"
    # The retry resumed the dead attempt's folder (without --resume it would refuse a non-empty
    # folder): the frames it had listed were kept, the rest written once.
    resumed, written = clip["result"]["frames_resumed"], clip["result"]["frames_written"]
    assert 1 <= resumed < 40 and resumed + written == 40
    complete_folder(tmp_path / "out" / SELFIE.stem, 40)


@needs_real
@needs_ray
def test_an_interrupted_ray_batch_prints_its_json_and_resumes(cluster, tmp_path):
    """SIGTERM (as kill or a cancelled job sends) to `volume convert --ray`: the running clips stop
    as Ctrl-C would, the summary still parses, exit 130; --resume finishes every folder."""
    out = tmp_path / "out"
    cmd = [str(BIN / "volume"), "convert", str(SELFIE), str(EXAMPLE), "-o", str(out), *LONGER, "--ray-address", cluster, "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("*/frame_*.ply")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no frame written in 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    summary = json.loads(stdout)
    assert summary["complete"] is False
    assert "interrupted" in {c["status"] for c in summary["clips"]}
    assert {c["status"] for c in summary["clips"]} <= {"interrupted", "converted", "not started"}

    resumed = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["complete"] is True
    for clip in (SELFIE, EXAMPLE):
        complete_folder(out / clip.stem, 24)
