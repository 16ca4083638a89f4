"""Authenticity: rendered from the input camera, do the splats reproduce the input?

Measured twice, inside the head mask: pixels that the person segmentation calls person (> 0.5),
that the ellipsoid head proxy covers (the head with its hair, not the shoulders), and that lie
inside the original frame.
* In the crop: the splats rendered by the crop (virtual) camera against the S x S crop.
* In the ORIGINAL frame, at its own resolution, which is what a user compares with: the splats
  moved back to the original camera's frame and rendered with the original intrinsics at the
  frame's own width and height, against the frame itself, inside the crop's head mask carried
  into the frame (``mask_in_original``). A crop larger than the head's size in the frame hides
  nothing here; one smaller (a big face in a big photo) shows its blur here and not in the crop.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from volume_cli import camera
from volume_cli.metrics import psnr, ssim
from volume_cli.face import FaceFinder
from volume_cli.framing import crop_of_still
from volume_cli.predictors import Predictor
from volume_cli.predictors.geometric import HEAD_RADII_M, GeometricPredictor, ellipsoid_depth, head_frame
from volume_cli.segmentation import PersonSegmenter


@dataclass
class AuthenticityResult:
    psnr_db: float
    ssim: float
    mask_pixels: int
    splats: int
    crop: np.ndarray  # [S, S, 3] uint8, the input crop
    render: np.ndarray  # [S, S, 3] uint8, the re-render from the input camera
    mask: np.ndarray  # [S, S] bool, the head mask
    lpips: float = float("nan")  # LPIPS (volume_cli.perceptual) inside the head mask, NaN for an empty mask
    original: "OriginalFrameScore | None" = None  # the same in the original frame, where it was given


@dataclass
class OriginalFrameScore:
    psnr_db: float
    ssim: float
    mask_pixels: int
    render: np.ndarray  # [H, W, 3] uint8, the splats rendered by the original camera
    mask: np.ndarray  # [H, W] bool, the head mask in the original frame


def mask_in_original(crop_mask: np.ndarray, K_original: np.ndarray, cam: camera.VirtualCamera, width: int,
                     height: int) -> np.ndarray:
    """[H, W] bool: the original frame's pixels whose centre the crop camera ``cam`` sees inside
    ``crop_mask`` [S, S] bool (nearest crop pixel; outside the crop: False)."""
    H = camera.homography_for_opencv(camera.crop_homography(K_original, cam))  # original -> crop pixel
    warped = cv2.warpPerspective(crop_mask.astype(np.uint8), H, (width, height),
                                 flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped > 0


def score_in_original(splats_virtual, cam: camera.VirtualCamera, image: np.ndarray, K_original: np.ndarray,
                      mask: np.ndarray, backend: str = "auto") -> OriginalFrameScore:
    """The input view in the original frame: ``splats_virtual`` (Gaussians in the crop camera
    ``cam``'s frame) rendered by the original camera (intrinsics K_original [3, 3], at the
    frame's own size) against ``image`` [H, W, 3] uint8 RGB, PSNR/SSIM inside ``mask`` [H, W] bool
    (e.g. ``mask_in_original`` of the crop's head mask)."""
    from volume_cli.pipeline import to_original_frame
    from volume_cli.render import render, resolve_backend

    h, w = image.shape[:2]
    if mask.shape != (h, w):
        raise ValueError(f"mask must be [{h}, {w}] like the image, got {list(mask.shape)}")
    splats = to_original_frame(splats_virtual.to("cpu"), cam.R)
    rendered = render(splats, np.eye(4, dtype=np.float32)[None], K_original.astype(np.float32)[None], w, h,
                      backend=resolve_backend(backend, "cpu")).rgb[0].float()
    target = torch.from_numpy(image).float() / 255.0
    mask_t = torch.from_numpy(mask)
    return OriginalFrameScore(psnr_db=psnr(rendered, target, mask_t), ssim=ssim(rendered, target, mask_t),
                              mask_pixels=int(mask.sum()), render=(rendered.clamp(0, 1) * 255 + 0.5).byte().numpy(),
                              mask=mask)


def masked_lpips(images: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor) -> list[float]:
    """LPIPS (volume_cli.perceptual) per image inside its mask, both images black outside it (the
    network sees ~50 px past a mask, and a crop's background would count): images, targets
    [C, H, W, 3] in [0, 1], masks [C, H, W] bool; NaN where a mask is empty."""
    from volume_cli.perceptual import load_lpips

    out = [float("nan")] * len(images)
    keep = [k for k in range(len(images)) if bool(masks[k].any())]
    if keep:
        with torch.no_grad():
            m = masks[keep, ..., None].float()
            d = load_lpips()((images[keep].clamp(0, 1) * m).permute(0, 3, 1, 2), (targets[keep] * m).permute(0, 3, 1, 2), masks[keep])
        for k, v in zip(keep, d.tolist()):
            out[k] = v
    return out


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
    with FaceFinder(video=False) if finder is None else contextlib.nullcontext(finder) as found_by:
        fc = crop_of_still(image, K, found_by, size)
    if fc is None:
        raise ValueError("no face found")
    return fc


def measure_crop(fc, predictor: Predictor, original: tuple[np.ndarray, np.ndarray] | None = None):
    """(AuthenticityResult, the predicted splats in the crop camera's frame, pruned) for a
    FramedCrop; ``original``: (the frame [H, W, 3] uint8 RGB the crop was cut from, its
    intrinsics [3, 3]) to score the original frame too (``AuthenticityResult.original``)."""
    from volume_cli.pipeline import crop_batch
    from volume_cli.render import render, resolve_backend

    size = fc.crop.shape[0]
    with torch.inference_mode():
        splats = predictor.predict(crop_batch([fc], "cpu"))[0].prune()
    # The crop camera sits at the origin of the splats' frame.
    rendered = render(splats, np.eye(4)[None], fc.cam.K[None], size, size, backend=resolve_backend("auto", "cpu")).rgb[0]
    target = torch.from_numpy(fc.crop).float() / 255.0
    if isinstance(predictor, GeometricPredictor):
        person = predictor.person_mask(fc.crop)
    else:
        with PersonSegmenter() as segmenter:
            person = segmenter.mask(fc.crop)
    mask = head_mask(fc.landmarks, fc.cam.K, person, fc.valid)
    mask_t = torch.from_numpy(mask)
    lpips = masked_lpips(rendered[None], target[None], mask_t[None])[0]
    return AuthenticityResult(
        psnr_db=psnr(rendered, target, mask_t), ssim=ssim(rendered, target, mask_t), mask_pixels=int(mask.sum()),
        splats=splats.count, crop=fc.crop, render=(rendered.clamp(0, 1) * 255 + 0.5).byte().numpy(), mask=mask, lpips=lpips,
        original=None if original is None else score_in_original(
            splats, fc.cam, original[0], original[1],
            mask_in_original(mask, original[1], fc.cam, original[0].shape[1], original[0].shape[0])),
    ), splats
