"""The predictor interface: a batch of homography-corrected crops and their virtual cameras in,
two Gaussians per crop pixel out, in each crop's virtual-camera frame.

Every predictor (the geometric baseline, the learned U-Net) implements :class:`Predictor`; the
pipeline knows nothing else about them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from torch import Tensor

from volume_cli.face import NUM_LANDMARKS
from volume_cli.gaussians import Gaussians

GAUSSIANS_PER_PIXEL = 2


@dataclass
class CropBatch:
    """B crops of size S x S and what is known about them.

    images:       [B, 3, S, S] RGB in [0, 1], the virtual camera's view (camera.warp_crop)
    valid:        [B, S, S] bool, True where the crop pixel comes from inside the original frame
    K:            [B, 3, 3] virtual-camera intrinsics (pixel centres at +0.5)
    head_center:  [B, 3] head centre in the virtual-camera frame, metres (on the optical axis)
    landmarks:    [B, 478, 3] face-mesh points in the virtual-camera frame, metres; learned
                  predictors may ignore them
    head_priors:  per crop, the clip's fitted head seen by the crop camera (head.prior.HeadPrior:
                  depth, normals, hair shell, the posed mesh, the fit), or None where the fit
                  failed; the whole field None: no clip fit (stills), predictors fit each crop alone
    head_texture: the clip's head texture (head.texture.ClipTexture), accumulated by the predictor
                  frame by frame, or None
    """

    images: Tensor
    valid: Tensor
    K: Tensor
    head_center: Tensor
    landmarks: Tensor
    head_priors: list | None = None
    head_texture: object | None = None

    def __post_init__(self) -> None:
        b, c, s, s2 = self.images.shape
        if c != 3 or s != s2:
            raise ValueError(f"images must be [B, 3, S, S], got {list(self.images.shape)}")
        expected = {"valid": (b, s, s), "K": (b, 3, 3), "head_center": (b, 3), "landmarks": (b, NUM_LANDMARKS, 3)}
        for name, shape in expected.items():
            actual = tuple(getattr(self, name).shape)
            if actual != shape:
                raise ValueError(f"{name} must be {list(shape)}, got {list(actual)}")

    @property
    def size(self) -> int:
        return self.images.shape[-1]

    def __len__(self) -> int:
        return self.images.shape[0]


class Predictor(Protocol):
    """Crops -> Gaussians.

    ``predict`` returns a batch of sets: Gaussians with means [B, 2 * S * S + X, 3] etc., in the
    virtual-camera frame of each crop (OpenCV axes, metres), ordered layer-major: the first S * S
    are each pixel's first Gaussian in row-major pixel order, then the second layer, then X >= 0
    Gaussians of the predictor's own (the geometric predictor's splats on the unseen side of the
    head; the same X for every crop). Unused Gaussians have (near-)zero opacity and are pruned by
    the pipeline.
    """

    name: str
    weights_sha256: str | None

    def predict(self, batch: CropBatch) -> Gaussians: ...
