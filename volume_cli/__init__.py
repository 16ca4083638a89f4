"""volume: recorded talking-head video -> per-frame 3D Gaussian splats -> rendered video."""

__version__ = "0.1.0"
