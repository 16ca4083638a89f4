"""The sequence.json manifest, frame file names, and loading a sequence."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
import torch

from volume_cli.formats import (
    COORDINATES,
    FrameRecord,
    Intrinsics,
    MissingRecord,
    PredictorInfo,
    SequenceListing,
    SequenceManifest,
    SourceInfo,
    SplatFormat,
    frame_file_name,
    frames_on_disk,
    load_sequence,
    read_listing,
    read_manifest,
    write_manifest,
    write_splats,
)
from volume_cli.formats import manifest as manifest_module
from volume_cli.gaussians import Gaussians

IDENTITY = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
K = [[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]]


def make_manifest(fmt: SplatFormat = SplatFormat.ply) -> SequenceManifest:
    def frame(index: int, status: str) -> FrameRecord:
        return FrameRecord(
            index=index,
            file=frame_file_name(index, fmt),
            time_s=index / 30.0,
            num_splats=5,
            status=status,
            rotation=IDENTITY,
            virtual_K=[[900.0, 0.0, 128.0], [0.0, 900.0, 128.0], [0.0, 0.0, 1.0]],
            face_box=[100.0, 80.0, 220.0, 230.0] if status == "ok" else None,
            head_center=[0.01, -0.02, 0.6],
            distance_m=0.6,
        )

    return SequenceManifest(
        created="2025-01-02T03:04:05+00:00",
        source=SourceInfo(path="talk.mp4", kind="video", fps=30.0, frame_count=3, rotation_deg=90),
        image_size=[480, 640],
        intrinsics=Intrinsics(K=K, focal_px=600.0, fov_deg=None),
        crop_size=256,
        predictor=PredictorInfo(name="geometric", weights_sha256=None),
        splat_format=fmt,
        options={"fov": None, "batch_size": 8},
        frames=[frame(0, "ok"), frame(2, "held")],
        missing=[
            MissingRecord(index=1, time_s=1 / 30.0, action="skipped"),
            MissingRecord(index=2, time_s=2 / 30.0, action="held"),
        ],
    )


def tiny_gaussians(n: int = 5) -> Gaussians:
    g = torch.Generator().manual_seed(1)
    return Gaussians(
        means=torch.randn(n, 3, generator=g),
        quats=torch.randn(n, 4, generator=g),
        log_scales=torch.full((n, 3), -5.0),
        opacity_logits=torch.zeros(n),
        sh=torch.zeros(n, 1, 3),
    )


def test_manifest_json_layout():
    data = json.loads(make_manifest(SplatFormat.ply_compressed).to_json())
    assert list(data) == [
        "format", "version", "tool", "created", "source", "image_size", "intrinsics", "crop_size",
        "coordinates", "predictor", "splat_format", "options", "head", "complete", "frames", "missing",
    ]  # fmt: skip
    assert (data["format"], data["version"]) == ("volume-sequence", 1)
    assert (data["splat_format"], data["complete"]) == ("ply-compressed", False)
    assert data["tool"]["name"] == "volume"
    assert data["coordinates"] == COORDINATES
    assert list(data["source"]) == ["path", "kind", "fps", "frame_count", "rotation_deg"]
    assert list(data["intrinsics"]) == ["K", "focal_px", "fov_deg"]
    assert list(data["predictor"]) == ["name", "weights_sha256"]
    assert list(data["frames"][0]) == [
        "index", "file", "time_s", "num_splats", "status", "rotation", "virtual_K", "face_box", "head_center", "distance_m",
        "head",
    ]  # fmt: skip
    assert data["frames"][0]["file"] == "frame_000000.compressed.ply"
    assert data["frames"][1]["face_box"] is None
    assert list(data["missing"][0]) == ["index", "time_s", "action"]


def test_manifest_without_the_optional_head_fields_reads():
    """Files written before the head prior (and by predictors without it) have no "head" keys."""
    data = json.loads(make_manifest().to_json())
    del data["head"]
    for frame in data["frames"]:
        del frame["head"]
    manifest = SequenceManifest.from_dict(data)
    assert manifest.head is None and manifest.frames[0].head is None
    del data["options"]  # a required field is still required
    with pytest.raises(ValueError, match="missing field 'options'"):
        SequenceManifest.from_dict(data)


def test_readers_of_splats_leave_each_frames_head_out(tmp_path):
    """load_sequence (render, info, view, flicker) keeps the header and a few numbers a frame (a
    SequenceListing), never the records with their fitted heads; read_manifest keeps them all."""
    manifest = make_manifest()
    manifest.head = {"ok": True, "identity": [0.5, -0.25], "file": "not-a-frame-record"}
    for i, frame in enumerate(manifest.frames):
        frame.head = {"ok": True, "expression": {"jawOpen": 0.3 + i}, "scale": 1.02}
    write_manifest(tmp_path, manifest)
    for record in manifest.frames:
        (tmp_path / record.file).write_bytes(b"")  # load_sequence only checks that they exist
    assert read_manifest(tmp_path) == manifest
    lean = load_sequence(tmp_path).manifest
    assert isinstance(lean, SequenceListing) and lean.header() == manifest.header()
    assert lean.head == manifest.head
    assert_listing_is(lean, manifest)


def assert_listing_is(listing: SequenceListing, manifest: SequenceManifest) -> None:
    """The listing holds the manifest's header and, in its arrays, each record's numbers."""
    assert listing.header() == manifest.header()
    t = listing.frames
    assert len(t) == len(manifest.frames)
    assert t.index.tolist() == [r.index for r in manifest.frames]
    assert t.time_s.tolist() == [r.time_s for r in manifest.frames]
    assert [t.status(i) for i in range(len(t))] == [r.status for r in manifest.frames]
    assert t.num_splats.tolist() == [r.num_splats for r in manifest.frames]
    assert t.head_center.tolist() == [r.head_center for r in manifest.frames]
    assert [t.file(i) for i in range(len(t))] == [r.file for r in manifest.frames]
    m = listing.missing
    assert m.index.tolist() == [r.index for r in manifest.missing]
    assert m.time_s.tolist() == [r.time_s for r in manifest.missing]
    assert ["held" if h else "skipped" for h in m.held] == [r.action for r in manifest.missing]


def test_the_file_has_one_record_a_line_and_is_the_same_json(tmp_path):
    """write_manifest streams the file: valid JSON, the very object the whole-document writer
    (json.dumps(indent=2), an older volume's) wrote, each record on a line of its own."""
    manifest = make_manifest()
    manifest.frames[0].head = {"ok": True, "expression": {"jawOpen": 0.3}, "note": "ünïcode, \"quoted\"\nand a newline"}
    path = write_manifest(tmp_path, manifest)
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == json.loads(json.dumps(manifest.to_dict(), indent=2, ensure_ascii=False))
    assert text == manifest.to_json() and text.endswith("}\n")
    lines = text.splitlines()
    start = lines.index('  "frames": [')
    end = lines.index("  ],", start)
    assert [json.loads(line.strip().rstrip(",")) for line in lines[start + 1 : end]] == manifest.to_dict()["frames"]
    assert lines[end + 1 : end + 2] == ['  "missing": [']
    assert [json.loads(line.strip().rstrip(",")) for line in lines[end + 2 : -2]] == manifest.to_dict()["missing"]
    assert lines[-2:] == ["  ]", "}"]
    # No records at all: still valid JSON.
    empty = make_manifest()
    empty.frames, empty.missing = [], []
    assert json.loads(write_manifest(tmp_path, empty).read_text()) == empty.to_dict()
    assert read_manifest(tmp_path) == empty


@pytest.fixture
def whole_file_reads(monkeypatch):
    """Counts the files read whole (json.load) rather than a line at a time."""
    calls = []
    whole = manifest_module._events_of_whole

    def counting(f, frame_heads):
        calls.append(frame_heads)
        return whole(f, frame_heads)

    monkeypatch.setattr(manifest_module, "_events_of_whole", counting)
    return calls


@pytest.mark.parametrize("layout", ["ours", "indent=2", "one line", "two records a line", "blank lines", "header reordered"])
def test_the_line_reader_and_the_whole_file_reader_agree(tmp_path, whole_file_reads, layout):
    """Our layout is read a line at a time; any other layout of the same JSON (an older volume's
    indent=2, a file edited by hand) is read whole, with the same result from both readers."""
    manifest = make_manifest()
    manifest.frames.append(dataclasses.replace(manifest.frames[0], index=7, file="renamed by hand.ply", time_s=0.25))
    for i, frame in enumerate(manifest.frames):
        frame.head = {"ok": True, "expression": {"jawOpen": 0.3 + i}}
    write_manifest(tmp_path, manifest)
    path = tmp_path / "sequence.json"
    ours = path.read_text()
    if layout == "indent=2":
        path.write_text(json.dumps(manifest.to_dict(), indent=2))
    elif layout == "one line":
        path.write_text(json.dumps(manifest.to_dict()))
    elif layout == "two records a line":  # still valid JSON, but no longer a record a line
        path.write_text(ours.replace("},\n    {", "}, {", 1))
    elif layout == "blank lines":
        path.write_text(ours.replace("},\n    {", "},\n\n    {", 1))
    elif layout == "header reordered":
        data = manifest.to_dict()
        path.write_text(ours.replace('  "format": "volume-sequence",\n', "", 1).replace('"version": 1,', '"version": 1, "format": "volume-sequence",'))
        assert json.loads(path.read_text()) == data
    assert json.loads(path.read_text()) == manifest.to_dict()
    assert read_manifest(path) == manifest
    assert_listing_is(read_listing(path), dataclasses.replace(manifest))
    if layout == "ours":
        assert whole_file_reads == []
    elif layout != "header reordered":  # (reordering the header keys keeps the line layout)
        assert whole_file_reads == [True, False]


@pytest.mark.parametrize("damage", ["cut mid-record", "a record's line garbled", "a comma missing", "no end"])
def test_a_damaged_file_is_one_error_naming_it(tmp_path, damage):
    manifest = make_manifest()
    path = write_manifest(tmp_path, manifest)
    text = path.read_text()
    first = text.index('{"index": 0')
    damaged = {
        "cut mid-record": text[: first + 40],
        "a record's line garbled": text[:first] + '{"index": 0, "file": ' + text[first + 40 :],
        "a comma missing": text.replace("},\n    {", "}\n    {", 1),
        "no end": text[: text.rindex("]")],
    }[damage]
    path.write_text(damaged)
    for read in (read_manifest, read_listing):
        with pytest.raises(ValueError, match=r"sequence\.json: not valid JSON: ") as e:
            read(tmp_path)
        assert "\n" not in str(e.value)


def test_manifest_round_trip(tmp_path):
    manifest = make_manifest()
    assert SequenceManifest.from_json(manifest.to_json()) == manifest
    path = write_manifest(tmp_path, manifest)
    assert path == tmp_path / "sequence.json"
    assert list(tmp_path.iterdir()) == [path]  # atomic: no temporary file left
    assert read_manifest(tmp_path) == manifest
    assert read_manifest(path) == manifest
    assert read_manifest(path).splat_format is SplatFormat.ply


def _drop(key_path):
    def edit(d):
        *parents, last = key_path
        for k in parents:
            d = d[k]
        del d[last]

    return edit


def _set(key_path, value):
    def edit(d):
        *parents, last = key_path
        for k in parents:
            d = d[k]
        d[last] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set(["version"], 2), "unsupported manifest version 2; this volume reads version 1"),
        (_drop(["version"]), "missing field 'version'"),
        (_set(["format"], "something-else"), "not a volume sequence manifest: format is 'something-else'"),
        (_drop(["source"]), "missing field 'source'"),
        (_drop(["frames", 1, "time_s"]), "missing field 'frames\\[1\\].time_s'"),
        (_drop(["source", "fps"]), "missing field 'source.fps'"),
        (_set(["frames", 0, "time_s"], "0.5"), "frames\\[0\\].time_s must be a number, got '0.5'"),
        (_set(["frames", 0, "index"], True), "frames\\[0\\].index must be an integer"),
        (_set(["frames", 0, "status"], "lost"), "frames\\[0\\].status must be one of 'ok', 'held', got 'lost'"),
        (_set(["frames", 0, "rotation"], [[1.0, 0.0, 0.0]]), "frames\\[0\\].rotation must be a 3 x 3 list"),
        (_set(["frames", 0, "file"], "../escape.ply"), "frames\\[0\\].file must be a bare file name"),
        (_set(["missing", 0, "action"], "ignored"), "missing\\[0\\].action must be one of 'skipped', 'held'"),
        (_set(["source", "kind"], "audio"), "source.kind must be one of 'video', 'images', 'image'"),
        (_set(["intrinsics", "K"], [[1.0, 0.0], [0.0, 1.0]]), "intrinsics.K must be a 3 x 3 list"),
        (_set(["image_size"], [640]), "image_size must be a list of 2 values"),
        (_set(["splat_format"], "spz"), "splat_format must be one of 'ply', 'splat', 'ply-compressed', got 'spz'"),
        (_set(["complete"], "yes"), "complete must be true or false"),
        (_set(["frames"], {}), "frames must be a list"),
    ],
)
def test_manifest_validation_names_the_field(tmp_path, edit, message):
    data = copy.deepcopy(make_manifest().to_dict())
    edit(data)
    with pytest.raises(ValueError, match=message):
        SequenceManifest.from_dict(data)
    # From a file, the message also names the file: read whole, and a line at a time.
    texts = [json.dumps(data)]
    if isinstance(data["frames"], list):
        header = {k: v for k, v in data.items() if k not in ("frames", "missing")}
        lines = [[json.dumps(r).encode() for r in data[k]] for k in ("frames", "missing")]
        texts.append(b"".join(manifest_module.manifest_chunks(header, *lines)).decode())
    for text in texts:
        (tmp_path / "sequence.json").write_text(text)
        for read in (read_manifest, read_listing):
            with pytest.raises(ValueError, match=f"sequence.json: {message}"):
                read(tmp_path)


def test_manifest_not_json():
    with pytest.raises(ValueError, match="not valid JSON"):
        SequenceManifest.from_json("{")
    with pytest.raises(ValueError, match="must be a JSON object, got list"):
        SequenceManifest.from_json("[]")


def test_records_are_checked_when_built_too():
    with pytest.raises(ValueError, match="status must be one of 'ok', 'held', got 'missing'"):
        FrameRecord(
            index=0, file="frame_000000.ply", time_s=0.0, num_splats=1, status="missing", rotation=IDENTITY,
            virtual_K=K, face_box=None, head_center=[0.0, 0.0, 0.6], distance_m=0.6,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("index", "fmt", "name"),
    [
        (12, "ply", "frame_000012.ply"),
        (0, SplatFormat.splat, "frame_000000.splat"),
        (12, "ply-compressed", "frame_000012.compressed.ply"),
        (1234567, SplatFormat.ply, "frame_1234567.ply"),  # more than 6 digits when needed
    ],
)
def test_frame_file_name(index, fmt, name):
    assert frame_file_name(index, fmt) == name


@pytest.mark.parametrize("index", [-1, 1.0, True, "3"])
def test_frame_file_name_rejects_bad_index(index):
    with pytest.raises(ValueError, match="index must be an int >= 0"):
        frame_file_name(index, "ply")


def test_frames_on_disk_lists_only_finished_frames_of_the_format(tmp_path):
    names = [
        "frame_000003.ply", "frame_000001.ply", "frame_000001.compressed.ply", "frame_000002.splat",
        ".frame_000004.ply.tmp-77", "frame_0000005.ply", "frame_12.ply", "notes.txt",
    ]  # fmt: skip
    for name in names:
        (tmp_path / name).write_bytes(b"")
    on_disk = frames_on_disk(tmp_path, "ply")
    assert list(on_disk.items()) == [(1, tmp_path / "frame_000001.ply"), (3, tmp_path / "frame_000003.ply")]
    assert list(frames_on_disk(tmp_path, SplatFormat.ply_compressed)) == [1]
    assert list(frames_on_disk(tmp_path, SplatFormat.splat)) == [2]


def test_load_sequence_from_folder_json_and_single_file(tmp_path):
    manifest = make_manifest(SplatFormat.splat)
    manifest.frames.reverse()  # load_sequence orders frames by source index
    g = tiny_gaussians()
    for record in manifest.frames:
        write_splats(tmp_path / record.file, g, manifest.splat_format)
    write_manifest(tmp_path, manifest)

    for given in (tmp_path, tmp_path / "sequence.json"):
        seq = load_sequence(given)
        assert seq.root == tmp_path
        assert_listing_is(seq.manifest, dataclasses.replace(manifest, frames=sorted(manifest.frames, key=lambda r: r.index)))
        assert seq.splat_format is SplatFormat.splat
        assert [(f.index, f.time_s, f.status, f.path.name) for f in seq.frames] == [
            (0, 0.0, "ok", "frame_000000.splat"),
            (2, 2 / 30.0, "held", "frame_000002.splat"),
        ]
        assert seq.fps == 30.0
        assert seq.read_frame(1).count == g.count

    single = load_sequence(tmp_path / "frame_000002.splat")
    assert single.manifest is None and single.fps is None
    assert [(f.index, f.time_s, f.path) for f in single.frames] == [(0, 0.0, tmp_path / "frame_000002.splat")]
    assert single.splat_format is SplatFormat.splat


def test_load_sequence_errors(tmp_path):
    with pytest.raises(ValueError, match="path does not exist"):
        load_sequence(tmp_path / "nope")
    with pytest.raises(ValueError, match=r"no sequence\.json in this folder"):
        load_sequence(tmp_path)
    write_manifest(tmp_path, make_manifest())  # lists two frames, neither written
    with pytest.raises(ValueError, match=r"2 frame files listed in sequence\.json are missing"):
        load_sequence(tmp_path)
