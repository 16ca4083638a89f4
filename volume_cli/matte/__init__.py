"""The learned person matte: MediaPipe's person mask corrected at its outline (``model``), the
synthetic data it is trained on (``dataset``) and its training loop (``training``).

Layering: ``model`` imports only torch and NumPy, and the predictors import it; ``dataset`` and
``training`` sit above the synthetic generator and the predictors' prior channels, and only their
commands use them.
"""
