"""The input view in the ORIGINAL frame, beside the source: per network, one row of (the source
inside the head mask's box, the splats rendered by the original camera at the frame's own size,
3x their difference). Prints authenticity in the crop and in the frame.

    python weights/experiments/s11_resolution/frame_vs_source.py FRAME.png OUT.jpg WEIGHTS_DIR...

A network whose front splats are thin shows its training grid there as a screen-door.
"""

import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from volume_cli import camera
from volume_cli.evaluate.authenticity import crop_image, measure_crop
from volume_cli.predictors.unet import load_unet_predictor


def main() -> None:
    source, out, folders = sys.argv[1], sys.argv[2], sys.argv[3:]
    image = cv2.cvtColor(cv2.imread(source), cv2.COLOR_BGR2RGB)
    fc = crop_image(image, 256)
    K = camera.image_intrinsics(image.shape[1], image.shape[0])  # as crop_image framed it
    rows = []
    for folder in folders:
        result, _ = measure_crop(fc, load_unet_predictor(Path(folder) / "unet.safetensors"), original=(image, K))
        frame = result.original
        print(f"{folder}: crop {result.psnr_db:.2f} dB, original frame {frame.psnr_db:.2f} dB")
        ys, xs = np.nonzero(frame.mask)
        box = (slice(ys.min(), ys.max()), slice(xs.min(), xs.max()))
        diff = np.clip(3 * np.abs(image[box].astype(int) - frame.render[box].astype(int)), 0, 255).astype(np.uint8)
        rows.append(np.concatenate([image[box], frame.render[box], diff], axis=1))
    cv2.imwrite(out, cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
