"""Lightning: the run of benchmarks/e2e/mlp.yaml written the idiomatic Lightning way.

    python benchmarks/e2e/lightning_mlp.py --data data/mnist1d/mnist1d-n5000-s42-sh0.npz --out DIR

Same data split, model, optimiser and schedule as `runlab train`: a LightningModule,
DataLoaders over TensorDatasets, `self.log` of train loss/accuracy (every 20 steps and
per epoch) and val/test metrics, CSVLogger, ModelCheckpoint (last.ckpt every epoch and
the best val/loss), validation every epoch, test at the end. The progress bar is off
(runlab prints one line per epoch when not on a terminal); everything else is default.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).parent))
from plain_mlp import load  # noqa: E402  (the same split; plain torch + numpy only)


class MLP(L.LightningModule):
    def __init__(self, in_dim: int, epochs: int):
        super().__init__()
        self.epochs = epochs
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_dim, 256), nn.ReLU(),
                                 nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _metrics(self, batch, split: str, on_step: bool) -> torch.Tensor:
        x, y = batch
        out = self(x)
        loss = F.cross_entropy(out, y)
        acc = (out.argmax(-1) == y).float().mean()
        self.log(f"{split}/loss", loss, on_step=on_step, on_epoch=True)
        self.log(f"{split}/acc", acc, on_step=on_step, on_epoch=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._metrics(batch, "train", on_step=True)

    def validation_step(self, batch, batch_idx):
        self._metrics(batch, "val", on_step=False)

    def test_step(self, batch, batch_idx):
        self._metrics(batch, "test", on_step=False)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=2.0e-3, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.epochs)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="MNIST-1D .npz (runlab's cache)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    (x, y), (xv, yv), (xt, yt) = load(args.data)
    L.seed_everything(args.seed)
    model = MLP(x.shape[-1], args.epochs)
    train = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True,
                       generator=torch.Generator().manual_seed(args.seed))
    val = DataLoader(TensorDataset(xv, yv), batch_size=512)
    test = DataLoader(TensorDataset(xt, yt), batch_size=512)
    trainer = L.Trainer(
        max_epochs=args.epochs, accelerator="cpu", devices=1, log_every_n_steps=20,
        logger=CSVLogger(args.out, name="lightning"), enable_progress_bar=False,
        callbacks=[ModelCheckpoint(dirpath=args.out / "checkpoints", monitor="val/loss",
                                   save_last=True)],
    )
    trainer.fit(model, train, val)
    trainer.test(model, test)


if __name__ == "__main__":
    main()
