"""Prototype: the hair shell as thick as the person's own hair at the skull's outline in the input view."""
import sys, json, numpy as np
from dataclasses import replace
from volume_cli import camera
from volume_cli.head.model import load_head_model
from volume_cli.head.prior import HAIR_SHELL_M
from volume_cli.predictors import geometric as G
from volume_cli.evaluate.synthetic import evaluate_synthetic

MAX_M = float(sys.argv[3]) if len(sys.argv) > 3 else 0.06
STAT = sys.argv[4] if len(sys.argv) > 4 else "median"

def hair_thickness(prior, person, K, scalp):
    skin, n = prior.skin_vertices, prior.vertex_normals
    ray = skin / np.linalg.norm(skin, axis=1, keepdims=True)
    edge = prior.visible & (scalp > 0.5) & (np.abs((ray * n).sum(1)) < 0.25)
    if edge.sum() < 5:
        return None
    p0 = camera.project(K, skin[edge]); p1 = camera.project(K, skin[edge] + 0.01 * n[edge])
    d = p1 - p0; d /= np.linalg.norm(d, axis=1, keepdims=True).clip(1e-9)
    s = person.shape[0]; T = 80
    t = np.arange(T)[None, :, None]
    pts = np.floor(p0[:, None] + t * d[:, None]).astype(int)
    inside = ((pts >= 0) & (pts < s)).all(-1)
    pts = pts.clip(0, s - 1)
    on = (person[pts[..., 1], pts[..., 0]] >= 0.5) & inside
    first_off = np.where(~on.all(1), np.argmin(on, axis=1), T)
    metres = first_off * skin[edge, 2] / K[0, 0]
    return float(np.median(metres) if STAT == "median" else np.percentile(metres, float(STAT)))

class HairPredictor(G.GeometricPredictor):
    def head_prior(self, batch, i):
        prior = super().head_prior(batch, i)
        if prior is None:
            return None
        image = batch.images[i].permute(1, 2, 0).cpu().numpy()
        person = self.person_mask(np.ascontiguousarray((image * 255 + 0.5).astype(np.uint8))) * batch.valid[i].cpu().numpy()
        model = load_head_model()
        K = batch.K[i].double().cpu().numpy()
        th = hair_thickness(prior, person, K, model.scalp)
        if th is None:
            return prior
        th = float(np.clip(th, HAIR_SHELL_M * prior.fit.scale, MAX_M))
        shell = prior.skin_vertices + prior.vertex_normals * (th * model.scalp)[:, None]
        shell_depth = G._steps().rasterize_depth(camera.project(K, shell), shell[:, 2], model.triangles, batch.size)
        HairPredictor.log.append(th)
        return replace(prior, vertices=shell, shell_depth=shell_depth)
HairPredictor.log = []

count = int(sys.argv[1]); out = sys.argv[2]
res = evaluate_synthetic({"geometric": G.GeometricPredictor(), "hair": HairPredictor()}, count=count, size=256)
print("thickness cm: median", np.median(HairPredictor.log) * 100, "p10/p90", np.percentile(HairPredictor.log, [10, 90]) * 100)
for name, m in res["predictors"].items():
    print(name, "auth %.2f orig %.2f realism %.2f" % (m["authenticity_psnr"], m["original_authenticity_psnr"], m["realism_psnr"]),
          {k: round(v["psnr"], 2) for k, v in m["realism"].items()}, "lpips %.3f jitter %.2f" % (m["realism_lpips"], m["stability_ratio"]))
json.dump(res, open(out, "w"))
