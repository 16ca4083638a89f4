import torch, sys
from pathlib import Path
from volume_cli.train.data import ShardExamples
from volume_cli.predictors.unet import load_weights
from volume_cli.train.loop import forward
from volume_cli.render import render
ex_src = ShardExamples(("/tmp/syn800",), run_seed=0, size=64, views=4, distance_noise=0.05, pair=False, priors=True)
for w in sys.argv[1:]:
    model, _ = load_weights(Path(w))
    model.eval()
    rows = []
    for i in range(0, 48, 4):
        ex = ex_src.example(i)
        with torch.no_grad():
            g = forward(model, ex["image"][None], ex["valid"][None], ex["K"][None], ex["distance"][None], False, ex["prior"][None])[0]
            r = render(g, ex["view_from_crop"][:1], ex["target_K"][:1], 64, 64)
        solid = (ex["target_alpha"][0] > 0.5) & (ex["target_depth"][0] > 0)
        pred = r.depth[0][solid]; want = (ex["target_depth"][0] * ex["distance_scale"])[solid]
        true_only = ex["target_depth"][0][solid]
        rows.append((float((pred - want).median()), float((pred - true_only).median()), float(ex["distance_scale"]), float(ex["distance"]), float(r.alpha[0][solid].mean())))
    t = torch.tensor(rows)
    print(Path(w).parent.name, "median pred-(scaled truth) %.3f m, pred-truth %.3f m, distance_scale mean %.3f, alpha %.3f" % (t[:,0].mean(), t[:,1].mean(), t[:,2].mean(), t[:,4].mean()))
    print("  per example pred-scaled:", " ".join("%.3f" % v for v in t[:,0].tolist()))
