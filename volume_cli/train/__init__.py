"""Training the U-Net predictor on synthetic heads rendered on the fly.

    data.py        synthetic samples -> training examples (crop, cameras, targets, stability pair)
    losses.py      scale correction, L1 + SSIM, alpha, depth and stability losses
    loop.py        the loop: checkpoints, resume, time budget, JSONL log, validation, export
    cli_command.py the ``volume train`` command
    device_kit.py  what to carry to a GPU machine that has no network (see GPU.md)
"""
