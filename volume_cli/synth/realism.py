"""A measurable proxy for how real the synthetic input frames look: does the face tracker that
``volume convert`` uses (MediaPipe face mesh through :class:`volume_cli.face.FaceFinder`) find the
face, and how close are its landmarks to the ground truth?

Per sample (its ``input_image``, ``input_K``, ``face_box`` and ``landmarks``):

* ``detected``: FaceFinder found a face (the face mesh on the frame, else its small-face fallback).
* ``box_iou``: IoU of the box around the 478 MediaPipe landmarks and the ground-truth face box.
  The two boxes are drawn differently (MediaPipe's reaches the forehead), so a perfect detection
  scores about 0.7, not 1; compare numbers between versions of the generator, not with 1.
* ``score``: the confidence of MediaPipe's short-range face detector on a square patch around
  the ground-truth box (the box's longer side x 2, resized to 128 pixels): how face-like the face
  looks, 0 where it finds nothing. Real webcam faces score about 0.9.
* ``nme``: mean pixel distance of five points, MediaPipe vs the mesh vertex projected through the
  stored camera, divided by the ground-truth outer-eye-corner distance in pixels (the usual
  "inter-ocular normalised mean error"). Points: the eye corners (MediaPipe 33, 133, 362, 263 vs
  the ends of MakeHuman's lid margin) and the nose tip (MediaPipe 1 vs the most forward nose vertex).

Run ``python -m volume_cli.synth.realism --count 100 --size 256`` for the numbers over a seed range.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from volume_cli.camera import project

# (MediaPipe face-mesh index, synthetic landmark name). "Left"/"right" are the person's own.
CORRESPONDENCES = (
    (33, "eye_r_outer"),
    (133, "eye_r_inner"),
    (362, "eye_l_inner"),
    (263, "eye_l_outer"),
    (1, "nose_tip"),
)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boxes [4] (x0, y0, x1, y1)."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def box_inside_fraction(box: np.ndarray, width: int, height: int) -> float:
    """Fraction of the box [4]'s area inside a W x H image."""
    w = max(0.0, min(box[2], width) - max(box[0], 0.0))
    h = max(0.0, min(box[3], height) - max(box[1], 0.0))
    area = (box[2] - box[0]) * (box[3] - box[1])
    return float(w * h / area) if area > 0 else 0.0


def ground_truth_points(sample: dict) -> np.ndarray:
    """The five correspondence points [5, 2] of a sample, projected into its input frame (pixels)."""
    names = sample["meta"]["landmark_names"]
    X = np.stack([sample["landmarks"][names.index(n)] for _, n in CORRESPONDENCES])
    return project(sample["input_K"], X)


class RealismMeter:
    """The detectors, opened once: ``with RealismMeter() as m: m.measure(sample)``. Not thread-safe."""

    PATCH = 128

    def __init__(self) -> None:
        import mediapipe as mp

        from volume_cli.face import FaceFinder

        self.finder = FaceFinder(video=False)
        self._detector = mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.05)

    def close(self) -> None:
        self.finder.close()
        self._detector.close()

    def __enter__(self) -> "RealismMeter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def detector_score(self, image: np.ndarray, box: np.ndarray) -> float:
        """Short-range detector confidence on the patch around ``box`` [4] (0 if nothing found)."""
        import cv2

        h, w = image.shape[:2]
        side = 2.0 * max(box[2] - box[0], box[3] - box[1])
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        x0, y0 = cx - side / 2, cy - side / 2
        scale = self.PATCH / side
        A = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]], np.float64)
        patch = cv2.warpAffine(image, A, (self.PATCH, self.PATCH), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        result = self._detector.process(np.ascontiguousarray(patch))
        return max((float(d.score[0]) for d in result.detections or []), default=0.0)

    def measure(self, sample: dict) -> dict:
        """{"detected", "score", "box_iou", "nme", "inside"} of one sample's input frame (iou and nme
        are None when nothing was found)."""
        image = np.ascontiguousarray(sample["input_image"])
        h, w = image.shape[:2]
        gt_box = np.asarray(sample["face_box"], np.float64)
        row = {"inside": box_inside_fraction(gt_box, w, h), "score": self.detector_score(image, gt_box)}
        self.finder._previous_box = None  # stills: choose afresh each time
        face = self.finder.find(image)
        if face is None:
            return {**row, "detected": False, "box_iou": None, "nme": None}
        gt = ground_truth_points(sample)
        found = face.landmarks[[i for i, _ in CORRESPONDENCES], :2]
        iod = float(np.linalg.norm(gt[0] - gt[3]))
        nme = float(np.linalg.norm(found - gt, axis=1).mean() / max(iod, 1e-6))
        return {**row, "detected": True, "box_iou": box_iou(face.box, gt_box), "nme": nme}


def summarize(rows: list[dict]) -> dict:
    """Aggregate :meth:`RealismMeter.measure` rows: detection rate (all frames, and frames whose face box
    is at least 90 % inside), mean and median IoU and NME over detected frames."""
    found = [r for r in rows if r["detected"]]
    framed = [r for r in rows if r["inside"] >= 0.9]

    def stat(key: str, fn) -> float | None:
        vals = [r[key] for r in found]
        return round(float(fn(vals)), 4) if vals else None

    return {
        "count": len(rows),
        "detection_rate": round(len(found) / max(len(rows), 1), 4),
        "detection_rate_framed": round(sum(r["detected"] for r in framed) / len(framed), 4) if framed else None,
        "framed_fraction": round(len(framed) / max(len(rows), 1), 4),
        "score_mean": round(float(np.mean([r["score"] for r in rows])), 4) if rows else None,
        "score_mean_framed": round(float(np.mean([r["score"] for r in framed])), 4) if framed else None,
        "box_iou_mean": stat("box_iou", np.mean),
        "nme_mean": stat("nme", np.mean),
        "nme_median": stat("nme", np.median),
    }


def realism_report(count: int, *, size: int = 256, run_seed: int = 0, **sample_kwargs) -> dict:
    """Render ``count`` samples (input frames only: one view, no temporal partner; the frames are
    the same as in full samples) and measure them. Returns :func:`summarize`'s dict plus timing."""
    from volume_cli.synth.sample import generate_sample, sample_seed

    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    rows = []
    t_render = t_measure = 0.0
    with RealismMeter() as meter:
        for i in range(count):
            t0 = time.perf_counter()
            s = generate_sample(sample_seed(run_seed, i), size=size, views=1, temporal=False, **sample_kwargs)
            t1 = time.perf_counter()
            rows.append(meter.measure(s))
            t_render += t1 - t0
            t_measure += time.perf_counter() - t1
    out = summarize(rows)
    out.update({"size": size, "run_seed": run_seed, "render_seconds": round(t_render, 2),
                "measure_seconds": round(t_measure, 2)})
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m volume_cli.synth.realism --count N --size S --seed K``: print the report as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(realism_report(args.count, size=args.size, run_seed=args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
