"""Real footage: authenticity of each predictor on photos and video frames, and a contact sheet of
novel views to look at (there is no ground truth for a real person's unseen side).

For each input (a still, or evenly spaced frames of a video) the head crop is cut as ``volume
convert`` cuts it; every predictor gets the same crop. Authenticity is measured as in
:mod:`volume_cli.evaluate.authenticity`: the input-view render against the crop inside the head
mask, and the original camera's render against the input itself at its own resolution.
The sheet has one row per input and predictor: the crop, the input-view render, then renders from
the crop camera swung about the head centre by each yaw (positive: the camera moves to the image's
right), over grey.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from volume_cli import camera
from volume_cli.evaluate.authenticity import crop_image, measure_crop
from volume_cli.predictors.base import Predictor

SHEET_YAWS = (-40.0, -20.0, 20.0, 40.0)
SHEET_BACKGROUND = (0.45, 0.45, 0.45)


def real_frames(path: Path, frames_per_video: int) -> list[tuple[str, np.ndarray]]:
    """(label, [H, W, 3] uint8 RGB) of a still (one), a folder of images (each) or a video
    (``frames_per_video`` evenly spaced frames)."""
    from volume_cli.video import open_source

    source = open_source(path)
    if source.kind != "video":
        return [(f"{path.name}" if source.kind == "image" else f"{path.name}/{i}", f.image) for i, f in enumerate(source)]
    frames = list(source)  # short clips: keeping them is simpler than seeking
    picks = np.linspace(0, len(frames) - 1, min(frames_per_video, len(frames))).round().astype(int)
    return [(f"{path.name}#{frames[i].index}", frames[i].image) for i in sorted(set(picks.tolist()))]


def orbit_renders(splats, fc, yaws, background=SHEET_BACKGROUND) -> list[np.ndarray]:
    """uint8 [S, S, 3] renders of splats (crop-camera frame) from the crop camera swung by each yaw
    about the head centre."""
    from volume_cli.evaluate.synthetic import orbit_view
    from volume_cli.render import render, resolve_backend

    size = fc.crop.shape[0]
    # In the crop camera's own frame the camera is the identity and the head centre lies on its axis.
    crop_cam = camera.VirtualCamera(R=np.eye(3), K=fc.cam.K, size=size)
    centre = np.array([0.0, 0.0, float(np.linalg.norm(fc.head_center))])
    views = np.stack([orbit_view(crop_cam, centre, y) for y in yaws]).astype(np.float32)
    Ks = np.repeat(fc.cam.K[None], len(yaws), 0).astype(np.float32)
    res = render(splats, views, Ks, size, size, background=background, backend=resolve_backend("auto", "cpu"))
    return [(r.clamp(0, 1) * 255 + 0.5).byte().numpy() for r in res.rgb]


def evaluate_real(paths: list[Path], predictors: dict[str, Predictor], *, size: int = 256, frames_per_video: int = 6,
                  yaws=SHEET_YAWS, sheet_height: int | None = 160,
                  progress: Callable[[int, int], None] | None = None) -> tuple[dict, np.ndarray | None]:
    """Authenticity per input and predictor, and (``sheet_height`` not None) the contact sheet
    [rows * sheet_height, W, 3] uint8. Inputs without a face are listed and skipped."""
    from volume_cli.face import FaceFinder
    from volume_cli.sheets import label, resize_to_height, stack_rows

    inputs = [(label_, image) for p in paths for label_, image in real_frames(Path(p), frames_per_video)]
    rows, no_face, sheet_rows = [], [], []
    with FaceFinder(video=False) as finder:
        for k, (name, image) in enumerate(inputs):
            try:
                fc = crop_image(image, size, finder=finder)
            except ValueError:
                no_face.append(name)
                continue
            row = {"input": name, "predictors": {}}
            K_original = camera.image_intrinsics(image.shape[1], image.shape[0])  # as crop_image cut it
            for pname, predictor in predictors.items():
                result, splats = measure_crop(fc, predictor, original=(image, K_original))
                row["predictors"][pname] = {"psnr": result.psnr_db, "ssim": result.ssim, "lpips": result.lpips, "splats": result.splats,
                                            "original_psnr": result.original.psnr_db, "original_ssim": result.original.ssim}
                if sheet_height:
                    views = orbit_renders(splats, fc, (0.0, *yaws))
                    tiles = [label(resize_to_height(fc.crop, sheet_height), f"{name}"),
                             label(resize_to_height(views[0], sheet_height), f"{result.psnr_db:.1f} dB {pname}")]
                    tiles += [label(resize_to_height(v, sheet_height), f"yaw {y:+.0f}") for v, y in zip(views[1:], yaws)]
                    sheet_rows.append(tiles)
            rows.append(row)
            if progress:
                progress(k + 1, len(inputs))
    summary = {}
    for pname in predictors:
        values = [r["predictors"][pname] for r in rows]
        summary[pname] = {"authenticity_psnr": _mean([v["psnr"] for v in values]),
                          "authenticity_ssim": _mean([v["ssim"] for v in values]),
                          "authenticity_lpips": _mean([v["lpips"] for v in values]),
                          "original_authenticity_psnr": _mean([v["original_psnr"] for v in values]),
                          "original_authenticity_ssim": _mean([v["original_ssim"] for v in values])} if values else None
    result = {"size": size, "inputs": len(inputs), "evaluated": len(rows), "no_face": no_face,
              "predictors": summary, "rows": rows}
    return result, (stack_rows(sheet_rows) if sheet_rows else None)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan
