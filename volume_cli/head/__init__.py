"""The whole-head prior: a MakeHuman head fitted to MediaPipe's face mesh, frame by frame.

Data flow (each module only imports the ones above it):

* ``model``  the head model file (weights/head_model.safetensors): a linear head built from the
             CC0 MakeHuman hm08 mesh and its morph targets, and which surface point each of
             MediaPipe's 478 landmarks is (made by ``python -m volume_cli.head.build``).
* ``fit``    one identity per clip (or per still) and, per frame, pose and expression, against the
             metric landmarks that convert computes; a frame the head cannot explain is reported
             as such so the predictor falls back to the ellipsoid.
* ``prior``  the fitted head seen by a crop camera: depth, normals and masks per pixel, and the
             mesh itself for splats on the side the camera does not see.
"""
