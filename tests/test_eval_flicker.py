"""Fixed-camera flicker of a sequence (evaluate/flicker.py) on sequences with a known answer."""

from __future__ import annotations

import pytest
import torch

from volume_cli.evaluate.flicker import consecutive_pairs, fixed_camera_flicker, main
from volume_cli.formats import (
    FrameRecord,
    Intrinsics,
    PredictorInfo,
    SequenceManifest,
    SourceInfo,
    SplatFormat,
    frame_file_name,
    load_sequence,
    write_manifest,
    write_splats,
)
from volume_cli.gaussians import Gaussians, rgb_to_sh_dc

HEAD = [0.0, 0.0, 0.68]


def wall(grey: float) -> Gaussians:
    """An opaque 0.36 m square of overlapping round splats at z = 0.6 m, all of one grey."""
    n = 48
    xy = (torch.arange(n) + 0.5) / n * 0.36 - 0.18
    y, x = torch.meshgrid(xy, xy, indexing="ij")
    means = torch.stack([x.reshape(-1), y.reshape(-1), torch.full((n * n,), 0.6)], dim=1)
    return Gaussians(means=means, quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n * n, 1),
                     log_scales=torch.full((n * n, 3), float(torch.log(torch.tensor(0.006)))),
                     opacity_logits=torch.full((n * n,), 8.0),
                     sh=rgb_to_sh_dc(torch.full((n * n, 3), grey))[:, None, :])


def write_sequence(folder, frames: list[tuple[int, str, float]]):
    """frames: (source index, status, grey) -> a sequence folder like volume convert's."""
    records = []
    for index, status, grey in frames:
        name = frame_file_name(index, SplatFormat.ply)
        write_splats(folder / name, wall(grey), SplatFormat.ply)
        records.append(FrameRecord(index=index, file=name, time_s=index / 30.0, num_splats=48 * 48, status=status,
                                   rotation=[[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]],
                                   virtual_K=[[640.0, 0, 128.0], [0, 640.0, 128.0], [0, 0, 1.0]],
                                   face_box=None, head_center=HEAD, distance_m=0.68))
    manifest = SequenceManifest(
        source=SourceInfo(path="talk.mp4", kind="video", fps=30.0, frame_count=len(frames), rotation_deg=0),
        image_size=[640, 480], intrinsics=Intrinsics(K=[[500.0, 0, 320.0], [0, 500.0, 240.0], [0, 0, 1.0]], focal_px=500.0, fov_deg=None),
        crop_size=256, predictor=PredictorInfo(name="geometric", weights_sha256=None), splat_format=SplatFormat.ply,
        options={}, frames=records, missing=[])
    write_manifest(folder, manifest)
    return load_sequence(folder)


def test_flicker_is_the_mean_colour_change_over_consecutive_predicted_frames(tmp_path):
    # Pairs (0,1): no change, (1,2): 0.3. Frame 3 is held and 5 follows a gap: neither pairs.
    seq = write_sequence(tmp_path, [(0, "ok", 0.2), (1, "ok", 0.2), (2, "ok", 0.5), (3, "held", 0.5), (5, "ok", 0.9)])
    assert consecutive_pairs(seq) == [(0, 1), (1, 2)]
    result = fixed_camera_flicker(seq, yaws_deg=(0.0, 25.0), size=64)
    assert result["pairs"] == 2
    assert set(result["yaws"]) == {"+0", "+25"}
    for value in result["yaws"].values():
        assert value == pytest.approx(0.15, abs=0.005)


def test_a_still_sequence_does_not_flicker(tmp_path):
    seq = write_sequence(tmp_path, [(0, "ok", 0.4), (1, "ok", 0.4), (2, "ok", 0.4)])
    assert fixed_camera_flicker(seq, size=64)["yaws"]["+0"] == pytest.approx(0.0, abs=1e-6)


def test_no_pair_is_an_error(tmp_path, capsys):
    write_sequence(tmp_path, [(0, "ok", 0.4), (2, "ok", 0.4)])
    with pytest.raises(ValueError, match="no two consecutive predicted frames"):
        fixed_camera_flicker(load_sequence(tmp_path), size=64)
    assert main([str(tmp_path)]) == 1
    assert "Error:" in capsys.readouterr().err
