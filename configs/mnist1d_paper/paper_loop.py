"""The MNIST-1D paper's own training loop and models (greydanus/mnist1d,
notebooks/train.py and notebooks/models.py, condensed), as a reference for the runlab
configs beside this file: test accuracy (%) after 6,000 and 8,000 steps per seed.

    python configs/mnist1d_paper/paper_loop.py cnn 0,1,2            # the paper: fixed order
    python configs/mnist1d_paper/paper_loop.py cnn 0,1,2 --shuffle  # reshuffled every epoch

The data is runlab's `mnist1d` (num_samples 5000, random_state 42), which equals the
paper's mnist1d_data.pkl (largest difference 9e-16). One thread, CPU.
"""

from __future__ import annotations

import argparse
import random

import numpy as np
import torch
from torch import nn

from runlab.data.synthetic import _generate_mnist1d


class ConvBase(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(1, 25, 5, stride=2, padding=1)
        self.conv2 = nn.Conv1d(25, 25, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(25, 25, 3, stride=2, padding=1)
        self.linear = nn.Linear(125, 10)

    def forward(self, x):
        h = self.conv1(x.view(-1, 1, x.shape[-1])).relu()
        h = self.conv3(self.conv2(h).relu()).relu()
        return self.linear(h.flatten(1))


class MLPBase(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear1, self.linear2 = nn.Linear(40, 100), nn.Linear(100, 100)
        self.linear3 = nn.Linear(100, 10)

    def forward(self, x):
        h = self.linear1(x).relu()
        return self.linear3(h + self.linear2(h).relu())


MODELS = {"cnn": ConvBase, "mlp": MLPBase, "logistic": lambda: nn.Linear(40, 10)}


def train(model_name: str, seed: int, data: dict, shuffle: bool, steps: int = 8000,
          batch_size: int = 100) -> dict[int, float]:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    model = MODELS[model_name]()
    opt = torch.optim.Adam(model.parameters(), 1e-2, weight_decay=0)
    x, y = torch.Tensor(data["x"]), torch.LongTensor(data["y"])
    x_test, y_test = torch.Tensor(data["x_test"]), torch.LongTensor(data["y_test"])
    order = torch.Generator().manual_seed(seed)
    acc = {}
    for step in range(steps + 1):  # the paper's range(total_steps + 1)
        bix = (step * batch_size) % len(x)
        if shuffle and bix == 0:
            perm = torch.randperm(len(x), generator=order)
            x, y = x[perm], y[perm]
        loss = nn.functional.cross_entropy(model(x[bix:bix + batch_size]), y[bix:bix + batch_size])
        loss.backward()
        opt.step()
        opt.zero_grad()
        if step in (6000, steps):
            with torch.no_grad():
                acc[step] = round(100 * (model(x_test).argmax(-1) == y_test).float().mean().item(), 1)
    return acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=sorted(MODELS))
    parser.add_argument("seeds", help="comma-separated, e.g. 0,1,2")
    parser.add_argument("--shuffle", action="store_true", help="reshuffle every epoch")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = _generate_mnist1d(5000, 42, False)
    for seed in (int(s) for s in args.seeds.split(",")):
        order = "reshuffled" if args.shuffle else "fixed order"
        print(args.model, order, "seed", seed, train(args.model, seed, data, args.shuffle), flush=True)


if __name__ == "__main__":
    main()
