"""Splat files: 3DGS PLY, antimatter15 .splat, PlayCanvas compressed PLY, atomic writes, dispatch."""

from __future__ import annotations

import io
import math
import os
import struct

import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from volume_cli.formats import SplatFormat, detect_format, read_splats, write_splats
from volume_cli.formats.atomic import atomic_write_bytes, atomic_write_json, remove_stale_temp_files, temp_path_for
from volume_cli.formats.ply_compressed import CHUNK_SIZE, encode_compressed_ply, morton_order, read_compressed_ply
from volume_cli.formats.splat import decode_splat, encode_splat, splat_order
from volume_cli.gaussians import SH_C0, Gaussians, rgb_to_sh_dc

PLY_PROPERTIES_DEGREE_0 = [
    "x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2",
    "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3",
]  # fmt: skip
PLY_PROPERTIES_DEGREE_1 = [
    "x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2",
    "f_rest_0", "f_rest_1", "f_rest_2", "f_rest_3", "f_rest_4", "f_rest_5", "f_rest_6", "f_rest_7", "f_rest_8",
    "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3",
]  # fmt: skip


def make_gaussians(n: int = 40, sh_degree: int = 0, seed: int = 0) -> Gaussians:
    """A head-sized cloud 0.6 m in front of the camera: millimetre splats, colours inside [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    k = (sh_degree + 1) ** 2
    rgb = 0.05 + 0.9 * torch.rand(n, 3, generator=g)
    return Gaussians(
        means=torch.tensor([0.0, 0.0, 0.6]) + 0.1 * torch.randn(n, 3, generator=g),
        quats=torch.randn(n, 4, generator=g),
        log_scales=math.log(0.005) + 0.5 * torch.randn(n, 3, generator=g),
        opacity_logits=2.0 * torch.randn(n, generator=g),
        sh=torch.cat([rgb_to_sh_dc(rgb)[:, None, :], 0.3 * torch.randn(n, k - 1, 3, generator=g)], dim=1),
    )


def assert_same_rotation(q: torch.Tensor, q_ref: torch.Tensor, atol: float) -> None:
    """Quaternions [N, 4] equal up to sign and norm, component-wise within ``atol``."""
    q = q / q.norm(dim=-1, keepdim=True)
    q_ref = q_ref / q_ref.norm(dim=-1, keepdim=True)
    sign = torch.where((q * q_ref).sum(-1, keepdim=True) < 0, -1.0, 1.0)
    torch.testing.assert_close(q * sign, q_ref, rtol=0, atol=atol)


def assert_opacity_within_8_bits(out: Gaussians, ref: Gaussians) -> None:
    """Half a step of 1/255; the decoders map 0 and 255 to half a step inside (0, 1)."""
    expected = ref.opacities().clamp(0.5 / 255, 1 - 0.5 / 255)
    torch.testing.assert_close(out.opacities(), expected, rtol=0, atol=0.5 / 255 + 1e-6)


def compressed_file(folder, data: bytes):
    path = folder / "frame.compressed.ply"
    path.write_bytes(data)
    return path


def assert_exactly_equal(a: Gaussians, b: Gaussians) -> None:
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


# -- 3DGS PLY -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sh_degree", "expected"), [(0, PLY_PROPERTIES_DEGREE_0), (1, PLY_PROPERTIES_DEGREE_1)])
def test_ply_layout_and_exact_round_trip(tmp_path, sh_degree, expected):
    g = make_gaussians(sh_degree=sh_degree)
    path = tmp_path / "frame_000000.ply"
    write_splats(path, g, SplatFormat.ply)

    ply = PlyData.read(str(path))
    assert not ply.text and ply.byte_order == "<"
    assert [e.name for e in ply.elements] == ["vertex"]
    vertex = ply["vertex"]
    assert [p.name for p in vertex.properties] == expected
    assert all(p.val_dtype == "f4" for p in vertex.properties)
    assert vertex.count == g.count
    assert all(np.all(vertex[n] == 0) for n in ("nx", "ny", "nz"))
    np.testing.assert_array_equal(vertex["rot_0"], g.quats[:, 0].numpy())  # w first
    np.testing.assert_array_equal(vertex["opacity"], g.opacity_logits.numpy())  # the logit, not the opacity
    np.testing.assert_array_equal(vertex["scale_2"], g.log_scales[:, 2].numpy())  # the log, not the scale
    if sh_degree == 1:
        # Channel-major: f_rest_0..2 are red's three coefficients, f_rest_3 is green's first.
        np.testing.assert_array_equal(vertex["f_rest_1"], g.sh[:, 2, 0].numpy())
        np.testing.assert_array_equal(vertex["f_rest_3"], g.sh[:, 1, 1].numpy())
        np.testing.assert_array_equal(vertex["f_rest_8"], g.sh[:, 3, 2].numpy())

    assert_exactly_equal(read_splats(path), g)  # float32 in, float32 out: lossless


def test_read_foreign_ply_any_order_no_normals(tmp_path):
    g = make_gaussians(sh_degree=1)
    # Another writer's layout: shuffled properties, no normals, a double, an extra property.
    names = [*[n for n in PLY_PROPERTIES_DEGREE_1 if n not in ("nx", "ny", "nz")][::-1], "confidence"]
    records = np.empty(g.count, dtype=[(n, "f8" if n == "opacity" else "f4") for n in names])
    columns = {
        "x": g.means[:, 0], "y": g.means[:, 1], "z": g.means[:, 2],
        "opacity": g.opacity_logits, "confidence": torch.ones(g.count),
        **{f"f_dc_{c}": g.sh[:, 0, c] for c in range(3)},
        **{f"f_rest_{c * 3 + k}": g.sh[:, 1 + k, c] for c in range(3) for k in range(3)},
        **{f"scale_{i}": g.log_scales[:, i] for i in range(3)},
        **{f"rot_{i}": g.quats[:, i] for i in range(4)},
    }  # fmt: skip
    for name in names:
        records[name] = columns[name].numpy()
    path = tmp_path / "foreign.ply"
    PlyData([PlyElement.describe(records, "vertex")]).write(str(path))

    assert_exactly_equal(read_splats(path), g)


def test_ply_without_splat_properties_names_what_is_missing(tmp_path):
    records = np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("opacity", "f4")])
    path = tmp_path / "points.ply"
    PlyData([PlyElement.describe(records, "vertex")]).write(str(path))
    missing = "f_dc_0, f_dc_1, f_dc_2, scale_0, scale_1, scale_2, rot_0, rot_1, rot_2, rot_3"
    with pytest.raises(ValueError, match=f"lacks {missing}$"):
        read_splats(path)


def test_ply_with_wrong_f_rest_count_is_rejected(tmp_path):
    names = [n for n in PLY_PROPERTIES_DEGREE_0] + ["f_rest_0", "f_rest_1", "f_rest_2"]
    path = tmp_path / "odd.ply"
    PlyData([PlyElement.describe(np.zeros(2, dtype=[(n, "f4") for n in names]), "vertex")]).write(str(path))
    with pytest.raises(ValueError, match="3 f_rest properties is not 3 \\(K - 1\\)"):
        read_splats(path)


# -- checks every writer makes ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(SplatFormat))
def test_non_finite_splats_raise_with_their_count_and_write_nothing(tmp_path, fmt):
    g = make_gaussians(n=40)
    g.means[2, 0] = float("nan")
    g.log_scales[5, 1] = float("inf")
    g.sh[7, 0, 2] = float("-inf")
    g.means[9, 1] = g.opacity_logits[9] = float("nan")  # two bad values, one splat
    g.quats[11] = 0.0  # no rotation at all
    path = tmp_path / f"frame_000000{fmt.suffix}"
    with pytest.raises(ValueError, match=r"^5 of 40 splats have non-finite parameters"):
        write_splats(path, g, fmt)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", list(SplatFormat))
def test_writers_take_a_single_set(tmp_path, fmt):
    batch = Gaussians.concatenate([make_gaussians(n=4)]).map(lambda t: t[None])  # [1, N, ...]
    with pytest.raises(ValueError, match="single set"):
        write_splats(tmp_path / "x", batch, fmt)


def test_float64_values_beyond_float32_are_non_finite(tmp_path):
    g = make_gaussians(n=6).map(lambda t: t.double())
    g.means[0, 0] = 1e300  # becomes inf in the float32 file
    with pytest.raises(ValueError, match=r"^1 of 6 splats"):
        write_splats(tmp_path / "a.ply", g, "ply")


@pytest.mark.parametrize("fmt", list(SplatFormat))
def test_empty_set_round_trips(tmp_path, fmt):
    g = make_gaussians(n=0)
    path = tmp_path / f"empty{fmt.suffix}"
    write_splats(path, g, fmt)
    assert read_splats(path).count == 0


def test_unknown_format_name():
    with pytest.raises(ValueError, match="'spz' is not a valid SplatFormat"):
        write_splats("x.spz", make_gaussians(n=2), "spz")


# -- atomic writes -----------------------------------------------------------------------------------


def test_atomic_write_replaces_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "a.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize("existing", [None, b"old content"])
def test_atomic_write_failing_mid_write_leaves_no_temp_file_and_the_old_target(tmp_path, monkeypatch, existing):
    target = tmp_path / "frame_000001.ply"
    if existing is not None:
        target.write_bytes(existing)

    def fsync_fails(fd):  # the data is in the temporary file, not yet renamed
        assert temp_path_for(target).exists()
        raise OSError("No space left on device")

    monkeypatch.setattr(os, "fsync", fsync_fails)
    with pytest.raises(OSError, match="No space left"):
        write_splats(target, make_gaussians(n=4), "ply")
    assert not temp_path_for(target).exists()
    assert list(tmp_path.iterdir()) == ([] if existing is None else [target])
    if existing is not None:
        assert target.read_bytes() == existing


def test_atomic_write_json_unserialisable_writes_nothing(tmp_path):
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "a.json", {"path": object()})
    assert list(tmp_path.iterdir()) == []


def test_remove_stale_temp_files(tmp_path):
    stale = tmp_path / ".frame_000003.ply.tmp-999999999"  # a killed run's
    own = temp_path_for(tmp_path / "frame_000004.ply")  # this process's: maybe being written now
    keep = [tmp_path / "frame_000001.ply", tmp_path / "notes.tmp-1", own]
    for p in [stale, *keep]:
        p.write_bytes(b"x")
    assert remove_stale_temp_files(tmp_path) == [stale]
    assert sorted(tmp_path.iterdir()) == sorted(keep)
    with pytest.raises(ValueError, match="folder must be an existing directory"):
        remove_stale_temp_files(tmp_path / "nope")


# -- antimatter15 .splat -----------------------------------------------------------------------------


def test_splat_byte_layout_of_one_splat():
    g = Gaussians(
        means=torch.tensor([[1.0, -2.0, 3.0]]),
        quats=torch.tensor([[2.0, 0.0, 0.0, 0.0]]),  # identity, not normalised
        log_scales=torch.log(torch.tensor([[0.01, 0.02, 0.04]])),
        opacity_logits=torch.tensor([0.0]),  # opacity 0.5
        sh=rgb_to_sh_dc(torch.tensor([[[1.0, 0.0, 2.0]]])),  # blue out of range: clamped to 1
    )
    expected = struct.pack("<3f3f4B4B", 1.0, -2.0, 3.0, 0.01, 0.02, 0.04, 255, 0, 255, 128, 255, 128, 128, 128)
    data = encode_splat(g)
    assert data[:12] == expected[:12] and data[24:] == expected[24:]
    np.testing.assert_allclose(np.frombuffer(data[12:24], "<f4"), [0.01, 0.02, 0.04], rtol=1e-6)  # exp(log(s))


def test_splat_round_trip_within_quantisation_budget():
    g = make_gaussians(n=60, sh_degree=1)
    data = encode_splat(g)
    assert len(data) == 32 * g.count

    order = splat_order(g)
    importance = (g.log_scales.sum(-1).exp() * g.opacities())[order]
    assert torch.all(importance[:-1] >= importance[1:])  # biggest, most opaque first
    ref = g.select(order)
    out = decode_splat(data)

    assert out.sh_degree == 0
    assert torch.equal(out.means, ref.means)  # float32 stored as is
    torch.testing.assert_close(out.log_scales, ref.log_scales, rtol=0, atol=1e-5)  # float32 exp then log
    # 8-bit colour and alpha: half a step of 1/255 (colours of the fixture are inside [0, 1]).
    torch.testing.assert_close(out.rgb(), ref.rgb(), rtol=0, atol=0.5 / 255 + 1e-6)
    assert_opacity_within_8_bits(out, ref)
    # Rotation bytes are 128 q + 128: half a step of 1/128 per component, a full step where +1 clips
    # to 255; renormalising at most doubles that.
    assert_same_rotation(out.quats, ref.quats, atol=2 / 128)


def test_splat_clamps_colour_to_unit_range():
    g = make_gaussians(n=2)
    g.sh[:, 0, :] = rgb_to_sh_dc(torch.tensor([[-0.5, 1.5, 0.5], [2.0, -1.0, 0.0]]))
    out = decode_splat(encode_splat(g))
    rgb = {tuple(row) for row in out.rgb().mul(255).round().int().tolist()}
    assert rgb == {(0, 255, 128), (255, 0, 0)}


def test_splat_data_of_wrong_length():
    with pytest.raises(ValueError, match="multiple of 32 bytes, got 33"):
        decode_splat(bytes(33))


# -- PlayCanvas compressed PLY --------------------------------------------------------------------------


def test_compressed_ply_layout(tmp_path):
    g = make_gaussians(n=300, sh_degree=1)  # two chunks, the second partial
    path = tmp_path / "frame_000000.compressed.ply"
    write_splats(path, g, SplatFormat.ply_compressed)
    ply = PlyData.read(str(path))
    assert not ply.text and ply.byte_order == "<"
    assert [(e.name, e.count) for e in ply.elements] == [("chunk", 2), ("vertex", 300), ("sh", 300)]
    assert [p.name for p in ply["chunk"].properties] == [
        "min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
        "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z",
        "min_r", "min_g", "min_b", "max_r", "max_g", "max_b",
    ]  # fmt: skip
    assert [p.name for p in ply["vertex"].properties] == [
        "packed_position", "packed_rotation", "packed_scale", "packed_color",
    ]  # fmt: skip
    assert [p.name for p in ply["sh"].properties] == [f"f_rest_{i}" for i in range(9)]
    assert {p.val_dtype for p in ply["chunk"].properties} == {"f4"}
    assert {p.val_dtype for p in ply["vertex"].properties} == {"u4"}
    assert {p.val_dtype for p in ply["sh"].properties} == {"u1"}
    assert detect_format(path) == SplatFormat.ply_compressed

    degree_0 = PlyData.read(io.BytesIO(encode_compressed_ply(make_gaussians(n=5))))
    assert [e.name for e in degree_0.elements] == ["chunk", "vertex"]  # no sh element


def test_compressed_ply_bit_layout():
    g = Gaussians(
        means=torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]),
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.1, -0.9, 0.2, 0.1]]),
        log_scales=torch.tensor([[-5.0, -5.0, -5.0], [-30.0, -4.0, 25.0]]),  # -30 and 25 clamp to +-20
        opacity_logits=torch.tensor([0.0, 30.0]),
        sh=rgb_to_sh_dc(torch.tensor([[[0.2, 0.2, 0.2]], [[0.8, 0.8, 0.8]]])),
    )
    ply = PlyData.read(io.BytesIO(encode_compressed_ply(g, morton=False)))
    chunk, vertex = ply["chunk"][0], ply["vertex"]
    assert [chunk[n] for n in ("min_x", "max_z", "min_scale_x", "max_scale_z")] == [0.0, 3.0, -20.0, 20.0]
    np.testing.assert_allclose([chunk["min_r"], chunk["max_b"]], [0.2, 0.8], rtol=1e-6)
    # x: 11 bits at 31-21, y: 10 bits at 20-11, z: 11 bits at 10-0, each round(t (2^b - 1)).
    assert vertex["packed_position"].tolist() == [0, 0xFFFFFFFF]
    # Scale x: -30 -> -20 is the chunk min (0), y: -4 is the max (1023), z: 25 -> 20 the max (2047).
    assert vertex["packed_scale"][1] == (0 << 21) | (1023 << 11) | 2047
    # Identity: largest is w (index 0); x, y, z = 0 map to round(0.5 * 1023) = 512.
    assert vertex["packed_rotation"][0] == (0 << 30) | (512 << 20) | (512 << 10) | 512
    # Largest |component| is x (index 1), negative: the quaternion is flipped, so w is stored as -0.1.
    q = np.array([0.1, -0.9, 0.2, 0.1]) / np.linalg.norm([0.1, -0.9, 0.2, 0.1])
    fields = [int(np.floor(-c * math.sqrt(2) / 2 * 1023 + 0.5 * 1023 + 0.5)) for c in q[[0, 2, 3]]]
    assert vertex["packed_rotation"][1] == (1 << 30) | (fields[0] << 20) | (fields[1] << 10) | fields[2]
    # rgb normalised to the chunk's colour bounds, opacity itself: 0.5 -> 128, sigmoid(30) -> 255.
    assert vertex["packed_color"].tolist() == [0x00000080, 0xFFFFFFFF]


def test_compressed_ply_round_trip_within_quantisation_budget(tmp_path):
    g = make_gaussians(n=300, sh_degree=1)
    out = read_compressed_ply(compressed_file(tmp_path, encode_compressed_ply(g)))
    order = morton_order(g.means)
    ref = g.select(order)
    assert out.count == g.count and out.sh_degree == 1

    # Budgets are half a quantisation step of each chunk's range (11 bits for x, z, 10 for y, 8 for
    # colour), plus 1e-6 for the float32 bounds and arithmetic.
    steps = torch.tensor([2047.0, 1023.0, 2047.0])
    for start in range(0, g.count, CHUNK_SIZE):
        sl = slice(start, start + CHUNK_SIZE)

        def budget(values, steps):
            return 0.5 * (values.amax(0) - values.amin(0)) / steps + 1e-6

        assert torch.all((out.means[sl] - ref.means[sl]).abs() <= budget(ref.means[sl], steps))
        assert torch.all((out.log_scales[sl] - ref.log_scales[sl]).abs() <= budget(ref.log_scales[sl], steps))
        rgb_ref = 0.5 + SH_C0 * ref.sh[sl, 0, :]  # not clamped: the chunk bounds hold any colour
        rgb_out = 0.5 + SH_C0 * out.sh[sl, 0, :]
        assert torch.all((rgb_out - rgb_ref).abs() <= budget(rgb_ref, 255.0))
    assert_opacity_within_8_bits(out, ref)
    # f_rest: 8 bits over [-4, 4], half a step.
    torch.testing.assert_close(out.sh[:, 1:], ref.sh[:, 1:], rtol=0, atol=4 / 255 + 1e-6)
    # Three components within half a 10-bit step of [-1/sqrt 2, 1/sqrt 2] (7e-4); the largest,
    # recomputed from the unit norm (>= 1/2), within 3 (1/sqrt 2) 7e-4 / (1/2) = 3e-3.
    assert_same_rotation(out.quats, ref.quats, atol=3e-3)


def test_compressed_ply_without_morton_keeps_input_order_and_flat_chunks_are_exact(tmp_path):
    g = make_gaussians(n=10)
    g.means[:] = torch.tensor([0.1, -0.2, 0.7])  # every splat at one point: a chunk of zero extent
    out = read_compressed_ply(compressed_file(tmp_path, encode_compressed_ply(g, morton=False)))
    assert torch.equal(out.means, g.means)
    assert_opacity_within_8_bits(out, g)


def test_morton_order_follows_the_z_curve():
    # The 2 x 2 x 2 corners of a cube: Z-order visits x fastest, then y, then z.
    corners = torch.tensor([[x, y, z] for z in (0.0, 1.0) for y in (0.0, 1.0) for x in (0.0, 1.0)])
    shuffled = corners[torch.tensor([5, 0, 7, 2, 4, 1, 6, 3])]
    assert torch.equal(shuffled[morton_order(shuffled)], corners)


def test_compressed_ply_legacy_chunks_without_colour_bounds(tmp_path):
    g = make_gaussians(n=20)
    ply = PlyData.read(io.BytesIO(encode_compressed_ply(g, morton=False)))
    legacy_names = [p.name for p in ply["chunk"].properties][:12]
    legacy_chunk = np.empty(ply["chunk"].count, dtype=[(n, "<f4") for n in legacy_names])
    for n in legacy_names:
        legacy_chunk[n] = ply["chunk"][n]
    path = tmp_path / "legacy.compressed.ply"
    PlyData([PlyElement.describe(legacy_chunk, "chunk"), ply["vertex"]], byte_order="<").write(str(path))
    out = read_compressed_ply(path)
    # Without colour bounds the 8-bit colour is rgb in [0, 1] itself.
    packed = ply["vertex"]["packed_color"].astype(np.int64)
    expected = np.stack([(packed >> s) & 255 for s in (24, 16, 8)], 1) / 255.0
    np.testing.assert_allclose(out.rgb().numpy(), expected, rtol=0, atol=1e-6)


def test_compressed_ply_chunk_count_must_match(tmp_path):
    g = make_gaussians(n=20)
    ply = PlyData.read(io.BytesIO(encode_compressed_ply(g)))
    two = np.concatenate([ply["chunk"].data, ply["chunk"].data])
    path = tmp_path / "bad.compressed.ply"
    PlyData([PlyElement.describe(two, "chunk"), ply["vertex"]], byte_order="<").write(str(path))
    with pytest.raises(ValueError, match=r"bad\.compressed\.ply: compressed PLY has 2 chunks for 20 splats"):
        read_splats(path)


def test_compressed_ply_reads_gsplats_export(tmp_path):
    """gsplat's exporter is an independent writer of the same layout (it truncates f_rest to 1/256
    steps where we round to the decoder's 1/255, hence the wider f_rest budget)."""
    exporter = pytest.importorskip("gsplat.exporter")
    g = make_gaussians(n=300, sh_degree=1)
    g.opacity_logits.clamp_(min=-5.0)  # gsplat drops splats with opacity below 1/255
    data = exporter.export_splats(
        g.means, g.log_scales, g.quats, g.opacity_logits, g.sh[:, :1], g.sh[:, 1:], format="ply_compressed"
    )
    out = read_compressed_ply(compressed_file(tmp_path, data))
    ref = g.select(exporter.sort_centers(g.means, torch.arange(g.count)))
    extent = ref.means.amax(0) - ref.means.amin(0)
    assert torch.all((out.means - ref.means).abs() <= 0.5 * extent / 1023 + 1e-6)
    assert_opacity_within_8_bits(out, ref)
    torch.testing.assert_close(out.sh[:, 1:], ref.sh[:, 1:], rtol=0, atol=8 / 255 + 1e-6)
    assert_same_rotation(out.quats, ref.quats, atol=3e-3)


# -- dispatch ----------------------------------------------------------------------------------------


def test_read_splats_goes_by_content_then_suffix(tmp_path):
    g = make_gaussians(n=8)
    misnamed = tmp_path / "compressed_but_named.ply"
    write_splats(misnamed, g, SplatFormat.ply_compressed)
    assert detect_format(misnamed) == SplatFormat.ply_compressed
    assert read_splats(misnamed).count == 8

    splat = tmp_path / "a.splat"
    write_splats(splat, g, "splat")
    assert detect_format(splat) == SplatFormat.splat
    assert torch.equal(read_splats(splat).means, g.means[splat_order(g)])

    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.txt: not a splat file"):
        read_splats(other)
    with pytest.raises(ValueError, match=r"notes\.txt: not a splat file"):
        detect_format(other)


def test_splat_format_names_and_suffixes():
    assert [(f.value, f.suffix) for f in SplatFormat] == [
        ("ply", ".ply"),
        ("splat", ".splat"),
        ("ply-compressed", ".compressed.ply"),
    ]


@pytest.mark.parametrize("fmt", [SplatFormat.ply, SplatFormat.ply_compressed])
def test_truncated_ply_is_a_value_error_naming_the_file(tmp_path, fmt):
    path = tmp_path / f"cut{fmt.suffix}"
    write_splats(path, make_gaussians(n=10), fmt)
    path.write_bytes(path.read_bytes()[:-10])  # as a non-atomic writer killed mid-file would leave it
    with pytest.raises(ValueError, match=r"cut.*: not a readable PLY file: .*early end-of-file"):
        read_splats(path)
