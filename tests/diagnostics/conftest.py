"""Tiny models that follow the model protocol, a recording writer and a TrainState maker."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from runlab.data.base import DatasetMeta
from runlab.logging.base import Writer
from runlab.train.events import TrainState

SIGNALS = DatasetMeta("signals", (1, 20), num_classes=3, class_names=("a", "b", "c"))
IMAGES = DatasetMeta("images", (1, 6, 6), num_classes=3)


class Classifier(nn.Module):
    """MLP classifier with `features`."""

    def __init__(self, meta: DatasetMeta, hidden: int = 16):
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(),
            nn.Linear(meta.input_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.head = nn.Linear(hidden, meta.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class AutoEncoder(nn.Module):
    """MLP autoencoder with encode / decode / latent_dim."""

    def __init__(self, meta: DatasetMeta, latent_dim: int = 3, hidden: int = 16, code: int = 1):
        super().__init__()
        self.latent_dim, self.shape = latent_dim, meta.input_shape
        self.encoder = nn.Sequential(
            nn.Flatten(),
            nn.Linear(meta.input_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, code * latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.Tanh(), nn.Linear(hidden, meta.input_dim)
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)[:, : self.latent_dim]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).reshape(-1, *self.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class VAE(AutoEncoder):
    """Tiny VAE: forward returns {recon, mu, logvar, z}, draws with the global RNG."""

    def __init__(self, meta: DatasetMeta, latent_dim: int = 3, hidden: int = 16):
        super().__init__(meta, latent_dim, hidden, code=2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return {"recon": self.decode(z), "mu": mu, "logvar": logvar, "z": z}

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        return self.decode(torch.randn(n, self.latent_dim, generator=generator, device=device))


MODELS = {"classifier": Classifier, "autoencoder": AutoEncoder, "vae": VAE}


class RecordingWriter(Writer):
    """Keeps (step, name) of every figure it is sent."""

    def __init__(self) -> None:
        self.figures: list[tuple[int, str]] = []

    def write_figure(self, step, name, figure):
        self.figures.append((step, name))


def make_data(meta: DatasetMeta, n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *meta.input_shape, generator=g), torch.randint(0, 3, (n,), generator=g)


def make_state(model: nn.Module, meta: DatasetMeta, run_dir: Path | None) -> TrainState:
    """A TrainState as the Trainer hands it to callbacks, with val and train data."""
    state = TrainState(
        config={},
        run_dir=run_dir,
        meta=meta,
        model=model,
        optimizer=None,  # callbacks do not use it; building one imports torch._dynamo (slow)
        device=torch.device("cpu"),
        writer=RecordingWriter(),
        max_epochs=4,
    )
    state.val_data = make_data(meta, seed=1)
    state.train_data = make_data(meta, seed=2)
    return state


def backward_once(model: nn.Module, meta: DatasetMeta) -> None:
    """Leave gradients on the parameters, as after a training step."""
    x, _ = make_data(meta, n=8, seed=3)
    out = model(x)
    (out["recon"] if isinstance(out, dict) else out).pow(2).mean().backward()


@pytest.fixture
def signals_classifier() -> Classifier:
    torch.manual_seed(0)
    return Classifier(SIGNALS)
