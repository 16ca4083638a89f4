"""What a learned predictor is told besides the crop: the head prior as image channels.

A network should not relearn what MediaPipe and the head model already know (issue 10). Per crop
pixel, in the crop camera (float32 [PRIOR_CHANNEL_COUNT, S, S], channel order PRIOR_CHANNELS):

    proxy_depth   (z of the geometric predictor's surface - d) / PRIOR_DEPTH_SCALE_M, everywhere:
                  the face mesh feathered into the fitted head, its hair shell and what extends
                  beyond them (the ellipsoid where the fit was refused); d is the head distance
                  the network is given, so the channel is head-relative as the network's own
                  depth output is. The U-Net's front depth is a residual over it
    head_depth    (z of the fitted head - d) / PRIOR_DEPTH_SCALE_M on the head, 0 off it
    normal_x/y/z  the fitted head's unit normal (facing the camera), 0 off the head
    head          1 on the fitted head
    shell         1 where the hair shell over the skull is hit but the head is not (hair beyond
                  the scalp's outline)
    person        MediaPipe's person confidence, 0 outside the original frame
    mesh_depth    (z of MediaPipe's face mesh - d) / PRIOR_DEPTH_SCALE_M on it (eye and mouth
                  openings filled), 0 off it
    mesh          1 on the face mesh

Where the head fit was refused the six head channels are 0 (the mesh and the person remain), so
"no prior" is a state the network sees in training too. Training (``train.priors``) and convert
(the U-Net predictor) both call :func:`batch_prior_channels`, so they see the same thing of the
same crop; convert's fit is the clip's (one identity, smoothed), training's a still's.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from volume_cli.head.prior import HeadPrior
from volume_cli.predictors.base import CropBatch

PRIOR_CHANNELS = ("proxy_depth", "head_depth", "normal_x", "normal_y", "normal_z", "head", "shell", "person", "mesh_depth", "mesh")
PRIOR_CHANNEL_COUNT = len(PRIOR_CHANNELS)
# Depths are divided by this (metres): a head's surface lies within ~0.1 m of its centre, so the
# channel is of order one where it matters.
PRIOR_DEPTH_SCALE_M = 0.1
# A mirrored crop (x -> S - x) flips the x component of every normal; the rest is only flipped.
MIRROR_SIGN = np.array([-1.0 if name == "normal_x" else 1.0 for name in PRIOR_CHANNELS], np.float32)


def head_masks(prior: HeadPrior | None, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The fitted head's ``head`` and ``shell`` channels as [S, S] bool masks: on the head, and on
    the hair shell beyond it; both empty where the fit was refused (None)."""
    if prior is None:
        empty = np.zeros((size, size), bool)
        return empty, empty
    return prior.head_mask, np.isfinite(prior.shell_depth) & ~prior.head_mask


def prior_channels(prior: HeadPrior | None, proxy_depth: np.ndarray, mesh_depth: np.ndarray, person: np.ndarray,
                   distance: float) -> np.ndarray:
    """float32 [PRIOR_CHANNEL_COUNT, S, S] (see the module docstring) from the crop's fitted head
    (None: refused), the geometric predictor's proxy depth [S, S], the face-mesh depth [S, S] (+inf
    off the mesh), the person confidence [S, S] (already 0 outside the frame) and the head
    distance d (metres)."""
    size = mesh_depth.shape[0]
    out = np.zeros((PRIOR_CHANNEL_COUNT, size, size), np.float32)
    index = {name: k for k, name in enumerate(PRIOR_CHANNELS)}
    out[index["proxy_depth"]] = (proxy_depth - distance) / PRIOR_DEPTH_SCALE_M
    if prior is not None:
        on_head, on_shell = head_masks(prior, size)
        out[index["head_depth"]] = np.where(on_head, (prior.depth - distance) / PRIOR_DEPTH_SCALE_M, 0.0)
        normals = np.where(on_head[..., None], prior.normals, 0.0)
        for k, axis in enumerate(("normal_x", "normal_y", "normal_z")):
            out[index[axis]] = normals[..., k]
        out[index["head"]] = on_head
        out[index["shell"]] = on_shell
    out[index["person"]] = person
    on_mesh = np.isfinite(mesh_depth)
    out[index["mesh_depth"]] = np.where(on_mesh, (mesh_depth - distance) / PRIOR_DEPTH_SCALE_M, 0.0)
    out[index["mesh"]] = on_mesh
    return out


def batch_prior_channels(batch: CropBatch, segmenter) -> Tensor:
    """[B, PRIOR_CHANNEL_COUNT, S, S] float32 (CPU) for every crop of ``batch``: its clip's head
    priors (``batch.head_priors``, from convert) or, without them, a still-image fit of each
    crop's own landmarks (as the geometric predictor does for stills). segmenter: a
    ``segmentation.PersonSegmenter``."""
    return batch_prior_inputs(batch, segmenter)[0]


def batch_prior_inputs(batch: CropBatch, segmenter) -> tuple[Tensor, list, list[np.ndarray]]:
    """:func:`batch_prior_channels`, with what they were made from: each crop's HeadPrior (None
    where the fit failed) and person mask [S, S] (times the valid mask)."""
    from volume_cli.head.model import load_head_model
    from volume_cli.head.track import HeadTrack
    from volume_cli import camera
    from volume_cli.predictors.geometric import face_mesh_depth, mesh_depth_rasterizer, proxy_depth

    size = batch.size
    still = None
    channels, priors, persons = [], [], []
    for i in range(len(batch)):
        K = batch.K[i].double().cpu().numpy()
        landmarks = batch.landmarks[i].double().cpu().numpy()
        if batch.head_priors is not None:
            prior = batch.head_priors[i]
        else:
            still = still or HeadTrack(load_head_model(), mesh_depth_rasterizer(), clip=False)
            prior = still.prior(landmarks, K, size)[0]
        crop = np.ascontiguousarray((batch.images[i].permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8))
        person = segmenter.mask(crop) * batch.valid[i].cpu().numpy()
        distance = float(batch.head_center[i, 2])
        proxy = proxy_depth(landmarks, K, camera.image_rays(K, size, size), prior)
        channels.append(prior_channels(prior, proxy, face_mesh_depth(landmarks, K, size), person, distance))
        priors.append(prior)
        persons.append(person)
    return torch.from_numpy(np.stack(channels)), priors, persons
