"""Authenticity: rendered from the input camera, do the splats reproduce the input crop?

Measured inside the head mask: pixels that the person segmentation calls person (> 0.5), that the
ellipsoid head proxy covers (the head with its hair, not the shoulders), and that lie inside the
original frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from volume_cli import camera
from volume_cli.metrics import psnr, ssim
from volume_cli.face import FaceFinder, head_state
from volume_cli.framing import frame_crop
from volume_cli.predictors import Predictor
from volume_cli.predictors.geometric import HEAD_RADII_M, GeometricPredictor, ellipsoid_depth, head_frame


@dataclass
class AuthenticityResult:
    psnr_db: float
    ssim: float
    mask_pixels: int
    splats: int
    crop: np.ndarray  # [S, S, 3] uint8, the input crop
    render: np.ndarray  # [S, S, 3] uint8, the re-render from the input camera
    mask: np.ndarray  # [S, S] bool, the head mask


def head_mask(landmarks: np.ndarray, K: np.ndarray, person: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """[S, S] bool head mask of a crop. landmarks [478, 3] metres in the virtual-camera frame,
    person [S, S] segmentation confidence, valid [S, S] bool."""
    size = person.shape[0]
    axes, centre, scale = head_frame(landmarks)
    rays = camera.image_rays(K, size, size)
    inside_head = np.isfinite(ellipsoid_depth(rays, axes, centre, HEAD_RADII_M * scale))
    return inside_head & (person > 0.5) & valid


def measure_image(image: np.ndarray, predictor: Predictor, size: int = 256, fov_deg: float | None = None) -> AuthenticityResult:
    """Predict splats for one still ``image`` [H, W, 3] uint8 RGB and compare their input-view
    render with the crop. Raises ValueError when no face is found."""
    return measure_crop(crop_image(image, size, fov_deg), predictor)[0]


def crop_image(image: np.ndarray, size: int = 256, fov_deg: float | None = None, finder: FaceFinder | None = None):
    """The head crop (a framing.FramedCrop) of a still ``image`` [H, W, 3] uint8 RGB, cut as
    ``volume convert`` cuts it. Raises ValueError when no face is found."""
    K = camera.image_intrinsics(image.shape[1], image.shape[0], fov_deg=fov_deg)
    if finder is None:
        with FaceFinder(video=False) as own:
            face = own.find(image)
    else:
        face = finder.find(image)
    if face is None:
        raise ValueError("no face found")
    return frame_crop(image, K, face, head_state(face, K), size)


def measure_crop(fc, predictor: Predictor):
    """(AuthenticityResult, the predicted splats in the crop camera's frame, pruned) for a
    FramedCrop."""
    from volume_cli.pipeline import crop_batch
    from volume_cli.render import render, resolve_backend

    size = fc.crop.shape[0]
    with torch.inference_mode():
        splats = predictor.predict(crop_batch([fc], "cpu"))[0].prune()
    # The crop camera sits at the origin of the splats' frame.
    rendered = render(splats, np.eye(4)[None], fc.cam.K[None], size, size, backend=resolve_backend("auto", "cpu")).rgb[0]
    target = torch.from_numpy(fc.crop).float() / 255.0
    segmenter = predictor if isinstance(predictor, GeometricPredictor) else GeometricPredictor(colour_steps=0)
    mask = head_mask(fc.landmarks, fc.cam.K, segmenter.person_mask(fc.crop), fc.valid)
    mask_t = torch.from_numpy(mask)
    return AuthenticityResult(
        psnr_db=psnr(rendered, target, mask_t), ssim=ssim(rendered, target, mask_t), mask_pixels=int(mask.sum()),
        splats=splats.count, crop=fc.crop, render=(rendered.clamp(0, 1) * 255 + 0.5).byte().numpy(), mask=mask,
    ), splats
