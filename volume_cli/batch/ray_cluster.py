"""Many clips across a Ray cluster (``volume convert A B C -o DIR --ray``): each clip is one Ray task.

A task runs the same single-clip ``volume convert CLIP -o DIR/NAME ... --json --quiet`` process as
``--jobs`` does (``clips.py``), with the worker's own Python, so a clip behaves as it would alone
and the summary and exit codes are the same. Ray only decides where and when each runs.

- Resources: one CPU a clip, and one GPU a clip when the predictor runs on CUDA (``--device cuda``,
  or ``auto`` on a cluster that has GPUs); Ray then sets the task's CUDA_VISIBLE_DEVICES, which the
  clip's process inherits.
- Failures: a clip that fails (no face, bad input) is a result, not a Ray error, and is not
  retried. A task whose worker died (killed, out of memory, its node lost), or whose convert
  process was killed by a signal, is retried up to ``RETRIES`` times. The convert process dies
  with its worker (Linux: PR_SET_PDEATHSIG), so no orphan keeps writing beside the retry.
- Resume: a retried task finishes the folder with ``--resume`` when the folder was absent or
  empty before this batch (so it is the earlier attempt's). Frames are written atomically
  and sequence.json lists only complete ones, so the retry neither duplicates a frame nor keeps a
  half-written one; unlisted frames are written again over themselves.
- Paths: the clips and DIR must be at the same paths on every node (a shared file system); they
  are sent as absolute paths.
- Ctrl-C / SIGTERM: the tasks are cancelled; a running clip is asked to stop as Ctrl-C would (it
  leaves a resumable folder, exit 130), a queued one never starts.

Test hook, not a feature: with the environment variable ``VOLUME_TEST_KILL_RAY_WORKER_AFTER_FRAMES=N``
set where ``volume convert --ray`` runs, a task whose folder lists no frames when it starts
SIGKILLs its own Ray worker once the folder's sequence.json lists N (tests/test_batch_ray.py
uses it to check the retry). Nothing else reads it.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from volume_cli.batch.clips import ClipResult, clip_command, record_exit
from volume_cli.concurrency import signal_as_interrupt
from volume_cli.formats import MANIFEST_NAME, read_listing
from volume_cli.formats.atomic import remove_stale_temp_files

# Retries of a task whose worker or convert process died (Ray's max_retries): 1 + 3 attempts.
RETRIES = 3
KILL_WORKER_HOOK = "VOLUME_TEST_KILL_RAY_WORKER_AFTER_FRAMES"
INSTALL_HINT = 'pip install "volume[cluster]" (or pip install ray)'
_POLL_S = 0.2


class ClusterError(RuntimeError):
    """Ray is missing, or the cluster cannot be reached."""


class ClipProcessKilled(RuntimeError):
    """A clip's convert process was ended by a signal we did not send (the OOM killer, kill -9):
    raised in the task so that Ray retries it."""


def ray_installed() -> bool:
    return importlib.util.find_spec("ray") is not None


def gpus_per_clip(device: str, cluster_gpus: float) -> int:
    """GPUs a clip's task asks Ray for: one when its predictor will run on CUDA, that is with
    ``--device cuda``, or ``auto`` on a cluster that has any GPU; else none."""
    return 1 if device == "cuda" or (device == "auto" and cluster_gpus >= 1) else 0


def attempt_args(convert_args: list[str], output: Path, fresh: bool) -> list[str]:
    """The convert options for this attempt of a clip's task. ``fresh``: the folder was absent or
    empty when the batch started. A fresh folder that exists now was begun by an earlier attempt
    whose worker died: finish it with --resume (not --overwrite, which would redo it). A folder
    that held something before is the user's: every attempt takes the options as given."""
    if not (fresh and output.is_dir()):
        return list(convert_args)
    remove_stale_temp_files(output)  # the dead attempt's; nothing else writes here now
    return [a for a in convert_args if a not in ("--overwrite", "--resume")] + ["--resume"]


def run_clip(source: str, output: str, convert_args: list[str], fresh: bool, kill_worker_after: int | None = None) -> tuple[int, str, str]:
    """Body of a clip's Ray task: run the clip's convert process to its end and return (exit code,
    stdout, stderr). Ray's cancel (a KeyboardInterrupt here) is passed on to the process as
    Ctrl-C. ``kill_worker_after``: the test hook (module docstring)."""
    out = Path(output)
    args = attempt_args(convert_args, out, fresh)
    if kill_worker_after is not None and _frames_listed(out):
        kill_worker_after = None  # the hook kills a first attempt only
    with _cancellable(), tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(clip_command(Path(source), out, args), stdout=stdout, stderr=stderr, text=True,
                                start_new_session=True, preexec_fn=_child_setup(os.getpid()))
        cancelled = False
        try:
            while proc.poll() is None:
                if kill_worker_after is not None and _frames_listed(out) >= kill_worker_after:
                    os.kill(os.getpid(), signal.SIGKILL)
                time.sleep(_POLL_S)
        except KeyboardInterrupt:
            cancelled = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
            proc.wait()
        if proc.returncode < 0 and not cancelled:
            raise ClipProcessKilled(f"its convert process was killed by signal {-proc.returncode}")
        stdout.seek(0)
        stderr.seek(0)
        return proc.returncode, stdout.read(), stderr.read()


def _absent_or_empty(folder: Path) -> bool:
    return not folder.exists() or folder.is_dir() and not any(folder.iterdir())


def _frames_listed(out: Path) -> int:
    """How many finished frames the folder's sequence.json lists (0 without one)."""
    try:
        return len(read_listing(out / MANIFEST_NAME).frames)
    except (OSError, ValueError):
        return 0


def _cancellable():
    """Ray cancels a running task by simulating SIGINT in its worker, which does nothing where the
    worker ignores SIGINT (it does when the cluster was started from a background job, as
    `ray start ... &` in a script is): within the block SIGINT raises KeyboardInterrupt."""
    return signal_as_interrupt(signal.SIGINT)


def _child_setup(parent: int) -> Callable[[], None]:
    """The clip process's preexec_fn. A Ray worker blocks SIGINT (and may ignore it), and a child
    inherits both: unblock it and give it its default disposition, so that the Ctrl-C we pass on
    stops the clip cleanly. On Linux, also have the child get SIGKILL when its parent (the Ray
    worker) dies, so that a retried task never races an orphan in the same folder."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None

    def preexec() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
        if prctl is not None:
            prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
            if os.getppid() != parent:  # the parent died before prctl took effect
                os._exit(1)

    return preexec


def convert_clips_on_ray(pairs: list[tuple[Path, Path]], convert_args: list[str], *, address: str | None, device: str,
                         quiet: bool = False, on_done: Callable[[ClipResult, int, int], None] | None = None
                         ) -> tuple[list[ClipResult], bool]:
    """Convert every (SRC, OUT) as a Ray task on the cluster at ``address`` (None: $RAY_ADDRESS,
    else the cluster last started on this machine, else a new local one for this call). Returns
    (one result per pair in order, interrupted), as ``clips.convert_clips`` does. Raises
    ClusterError when Ray is missing or the cluster cannot be reached."""
    if not ray_installed():
        raise ClusterError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}")
    import ray
    from ray import exceptions as rex

    results = [ClipResult(source=s, output=o) for s, o in pairs]  # the paths as given, as --jobs reports them
    pairs = [(s.absolute(), o.absolute()) for s, o in pairs]
    hook = os.environ.get(KILL_WORKER_HOOK)
    kill_after = int(hook) if hook else None
    done = 0

    def collect(ref, i: int) -> None:
        nonlocal done
        r = results[i]
        try:
            record_exit(r, *ray.get(ref))
        except rex.TaskCancelledError:
            return  # cancelled before it started: "not started"
        except rex.WorkerCrashedError:
            r.exit_code, r.error = 1, f"its Ray worker died {1 + RETRIES} times"
        except rex.RayTaskError as e:
            cause = e.cause or e
            r.exit_code, r.error = 1, f"{cause} ({1 + RETRIES} attempts)" if isinstance(cause, ClipProcessKilled) else _first_line(cause)
        except rex.RayError as e:  # its node lost, the cluster gone, ...
            r.exit_code, r.error = 1, f"Ray: {type(e).__name__}: {_first_line(e)}"
        done += 1
        if on_done:
            on_done(r, done, len(pairs))

    # Ray prints the cluster's messages (a worker died, a task is retried) on stdout from a thread
    # of its own; stdout is for results only, so they go to stderr while Ray is connected.
    with contextlib.redirect_stdout(sys.stderr):
        _connect(ray, address, quiet)
        try:
            task = ray.remote(run_clip).options(
                num_cpus=1, num_gpus=gpus_per_clip(device, ray.cluster_resources().get("GPU", 0)),
                max_retries=RETRIES, retry_exceptions=[ClipProcessKilled])
            refs = {task.remote(str(s), str(o), convert_args, _absent_or_empty(o), kill_after): i
                    for i, (s, o) in enumerate(pairs)}
            try:
                while refs:
                    ready, _ = ray.wait(list(refs), num_returns=1, timeout=_POLL_S)
                    for ref in ready:
                        collect(ref, refs.pop(ref))
            except KeyboardInterrupt:
                for ref in refs:
                    ray.cancel(ref)  # a queued clip never starts; a running one gets Ctrl-C
                for ref in list(refs):
                    collect(ref, refs.pop(ref))
                return results, True
            return results, False
        finally:
            ray.shutdown()


def _connect(ray, address: str | None, quiet: bool) -> None:
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING if quiet else logging.INFO)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise ClusterError(f"cannot reach the Ray cluster{f' at {address}' if address else ''}: {_first_line(e)}") from e
    finally:
        # ray.init sets a SIGTERM handler that exits at once; put back the caller's (the CLI's
        # stops a batch as Ctrl-C does). Only the main thread may set handlers.
        if sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, sigterm)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]

