"""Where the real test media lives: ../shared/data/real beside the repository (see its
PROVENANCE.md). CI clones the repository with shared/ beside it, as the development machines have."""

from pathlib import Path

import pytest

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
SELFIE = REAL / "selfie_640x360.mp4"  # 72 frames, 30 fps, one frontal face
needs_real = pytest.mark.skipif(not SELFIE.is_file(), reason=f"real test media not found at {REAL}")
