"""The front layer's depth minus the prior's surface, in the crop, for several prior networks on
real photos (one row per photo, one column per network; grey = 0, white = 8 cm nearer, black = 8 cm
further), beside the crop.

    python depth_maps.py OUT.png PHOTO... -- WEIGHTS.safetensors...
"""
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from volume_cli.evaluate.authenticity import crop_image
from volume_cli.face import FaceFinder
from volume_cli.pipeline import crop_batch
from volume_cli.predictors.prior_input import PRIOR_CHANNELS, PRIOR_DEPTH_SCALE_M
from volume_cli.predictors.unet import load_unet_predictor

RANGE_M = 0.08


def main() -> None:
    out, rest = Path(sys.argv[1]), sys.argv[2:]
    photos, weights = rest[:rest.index("--")], rest[rest.index("--") + 1:]
    predictors = [load_unet_predictor(Path(w)) for w in weights]
    rows = []
    with FaceFinder(video=False) as finder:
        for photo in photos:
            image = cv2.cvtColor(cv2.imread(photo), cv2.COLOR_BGR2RGB)
            fc = crop_image(image, 256, finder=finder)
            batch = crop_batch([fc], "cpu")
            tiles = [cv2.cvtColor(fc.crop, cv2.COLOR_RGB2BGR)]
            for p in predictors:
                g = p.predict(batch)
                prior = p.prior_of(batch)
                s = batch.size
                z = g.means[0, : s * s, 2].reshape(s, s)
                base = float(batch.head_center[0, 2]) + PRIOR_DEPTH_SCALE_M * prior[0, PRIOR_CHANNELS.index("proxy_depth")]
                residual = (z - base).numpy()
                person = prior[0, PRIOR_CHANNELS.index("person")].numpy() > 0.5
                grey = np.clip(0.5 - 0.5 * residual / RANGE_M, 0, 1) * person  # nearer = brighter
                tiles.append(cv2.cvtColor((grey * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR))
                both = person[1:] & person[:-1]
                print(Path(photo).name, Path(weights[predictors.index(p)]).parent.name,
                      "front depth minus the prior's on the person: median %+.4f m (negative: nearer), mean |.| %.4f m, "
                      "row-to-row change %.4f m" % (float(np.median(residual[person])), float(np.abs(residual[person]).mean()),
                                                    float(np.abs(np.diff(residual, axis=0))[both].mean())))
            rows.append(np.concatenate(tiles, axis=1))
    cv2.imwrite(str(out), np.concatenate(rows, axis=0))


if __name__ == "__main__":
    main()
