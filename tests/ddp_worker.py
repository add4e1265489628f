"""One rank of the two-process DDP test (started by torchrun from test_distributed.py).

Trains two tiny CIFAR nets for a few steps on the synthetic set under gloo and writes this
rank's weights, metrics and the images it trained on to OUT_DIR.
"""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

import explorer.training.engine
from explorer.data import load_data
from explorer.training import distributed
from explorer.training.engine import preset, train

batches = []  # the un-augmented images this rank trained on, step by step


def recording_augment(images, *args):
    batches.append(images.clone())
    return augment(images, *args)


augment, explorer.training.engine.augment = explorer.training.engine.augment, recording_augment

out_dir = Path(sys.argv[1])
launch = distributed.launch_from_environment()
device = distributed.start(launch, "cpu")
torch.set_num_threads(1)
config = preset("demo", models=("plain20", "resnet20"), data="synthetic:200", steps=4, batch_size=16,
                width=2, image_size=8, val_every=2, val_limit=50)
data = load_data(config.data, image_size=config.image_size, seed=config.seed)
trained = {}
records = list(train(config, data, device=device, trained=trained))
state = {f"{name}.{key}": value.contiguous() for name, model in trained.items() for key, value in model.state_dict().items()}
state["train_error"] = torch.tensor([[m.train_error for m in r.models] for r in records])
state["batches"] = torch.stack(batches)
state["val_measured"] = torch.tensor([[m.val_error is not None for m in r.models] for r in records])
save_file(state, str(out_dir / f"rank{launch.rank}.safetensors"))
distributed.stop()
