"""Training loss terms of several networks on the same 6 training batches (batch 4, the run's data)."""
import sys, json, torch
from volume_cli.train import loop
from volume_cli.predictors.unet import load_weights
torch.set_num_threads(2)
cfg = loop.TrainConfig.from_json(json.load(open("/tmp/runs11/G/config.json")))
src = loop.ShardSource(cfg)
batches = []
it = src.batches(5000)
for _ in range(6):
    batches.append(next(it))
for w in sys.argv[1:]:
    model, _ = load_weights(w + "/unet.safetensors")
    model.eval()
    acc = {}
    with torch.no_grad():
        for b in batches:
            t = loop.batch_losses(model, b, cfg)
            for k, v in t.items():
                acc[k] = acc.get(k, 0) + float(v) / len(batches)
    print(w, {k: round(v, 4) for k, v in acc.items() if k in ("input_view", "novel_views", "alpha", "depth", "front_alpha", "stability", "total")})
