"""Autoencoders and VAEs, with MLP or convolutional encoder/decoder."""

from __future__ import annotations

import torch
from torch import nn

from runlab.data.base import DatasetMeta
from runlab.losses import elbo_terms
from runlab.models.blocks import ConvDecoder, ConvEncoder, mlp
from runlab.registry import MODELS


def _encoder_decoder(meta: DatasetMeta, arch: str, hidden: list[int], channels: list[int],
                     code_dim: int, latent_dim: int, act: str) -> tuple[nn.Module, nn.Module]:
    """Encoder to `code_dim` outputs, decoder from `latent_dim` back to the input shape."""
    shape = meta.input_shape
    if arch == "mlp":
        enc = nn.Sequential(nn.Flatten(), mlp([meta.input_dim, *hidden, code_dim], act))
        dec = nn.Sequential(mlp([latent_dim, *reversed(hidden), meta.input_dim], act),
                            nn.Unflatten(1, shape))
        return enc, dec
    if arch == "conv":
        conv = ConvEncoder(shape, channels, act=act)
        enc = nn.Sequential(conv, nn.Linear(conv.out_dim, code_dim))
        return enc, ConvDecoder(latent_dim, conv.shapes, act=act)
    raise ValueError(f"arch must be 'mlp' or 'conv', got {arch!r}")


@MODELS.register("autoencoder")
class Autoencoder(nn.Module):
    """Deterministic autoencoder; forward returns the reconstruction (B, *input_shape)."""

    reconstructs = True

    def __init__(self, meta: DatasetMeta, latent_dim: int = 8, hidden: list[int] = (256, 128),
                 arch: str = "mlp", channels: list[int] = (32, 64), activation: str = "relu"):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder, self.decoder = _encoder_decoder(
            meta, arch, list(hidden), list(channels), latent_dim, latent_dim, activation)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


@MODELS.register("vae")
class VAE(nn.Module):
    """Variational autoencoder (Kingma & Welling 2014) with a Gaussian posterior.

    forward returns {"recon", "mu", "logvar", "z"}. It carries its own ELBO (`loss`),
    used when the config's `loss` is null; `beta` may follow a schedule."""

    reconstructs = True

    def __init__(self, meta: DatasetMeta, latent_dim: int = 8, hidden: list[int] = (256, 128),
                 arch: str = "mlp", channels: list[int] = (32, 64), activation: str = "relu",
                 beta: float = 1.0, likelihood: str = "gaussian"):
        super().__init__()
        self.latent_dim, self.beta, self.likelihood = latent_dim, beta, likelihood
        self.encoder, self.decoder = _encoder_decoder(
            meta, arch, list(hidden), list(channels), 2 * latent_dim, latent_dim, activation)

    def encode_dist(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=-1)  # (B, latent_dim) each
        return mu, logvar

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_dist(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mu, logvar = self.encode_dist(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return {"recon": self.decode(z), "mu": mu, "logvar": logvar, "z": z}

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        return self.decode(z)

    def loss(self, out: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return elbo_terms(out, x, self.beta, self.likelihood)

    def loss_per_sample(self, out: dict[str, torch.Tensor], x: torch.Tensor,
                        y: torch.Tensor) -> dict[str, torch.Tensor]:
        return elbo_terms(out, x, self.beta, self.likelihood, per_sample=True)
