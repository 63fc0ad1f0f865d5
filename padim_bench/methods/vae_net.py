"""The VAE baseline's network: encoder (normalisation + backbone trunk), latent heads and decoder,
its loss, and its sizes built on the ``meta`` device (the architecture is described in
:mod:`padim_bench.methods.vae`).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor, nn

DECODER_WIDTHS = (512, 256, 128, 64, 32, 16)  # widest first; one entry per upsampling stage + 1


class VaeNet(nn.Module):
    """Encoder (normalisation + backbone trunk), latent heads and decoder.

    Args:
        normalize: module mapping [0, 1] RGB to the encoder's input normalisation.
        trunk: module returning ``{layer: (N, C, S/stride, S/stride)}``.
        layer: the key of ``trunk``'s output used as the encoder output.
        enc_channels: channels of that output.
        stride: its stride (a power of two >= 2).
        latent_channels: channels of ``mu`` / ``logvar``.
    """

    def __init__(self, normalize: nn.Module, trunk: nn.Module, layer: str, enc_channels: int,
                 stride: int, latent_channels: int) -> None:
        super().__init__()
        self.layer = layer
        self.normalize = normalize
        self.trunk = trunk
        self.mu_head = nn.Conv2d(enc_channels, latent_channels, 1)
        self.logvar_head = nn.Conv2d(enc_channels, latent_channels, 1)
        stages = int(round(math.log2(stride)))
        widths = [DECODER_WIDTHS[min(i, len(DECODER_WIDTHS) - 1)] for i in range(stages + 1)]
        layers: list[nn.Module] = [nn.Conv2d(latent_channels, widths[0], 1), nn.ReLU(inplace=True)]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"),
                       nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        layers += [nn.Conv2d(widths[-1], 3, 3, padding=1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*layers)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` (N, 3, S, S) in [0, 1] -> ``mu``, ``logvar`` (N, latent, S/stride, S/stride)."""
        h = self.trunk(self.normalize(x))[self.layer].float()
        return self.mu_head(h), self.logvar_head(h).clamp(-30.0, 20.0)

    def decode(self, z: Tensor) -> Tensor:
        """Latent -> reconstruction (N, 3, S, S) in [0, 1]."""
        return self.decoder(z)

    def forward(self, x: Tensor, noise: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Reconstruction, ``mu``, ``logvar``; ``z = mu`` when ``noise`` is None."""
        mu, logvar = self.encode(x)
        z = mu if noise is None else mu + torch.exp(0.5 * logvar) * noise
        return self.decode(z), mu, logvar

    def encoder_modules(self) -> list[nn.Module]:
        return [self.normalize, self.trunk, self.mu_head, self.logvar_head]


def vae_loss(x: Tensor, x_hat: Tensor, mu: Tensor, logvar: Tensor, beta: float) -> tuple[Tensor, Tensor, Tensor]:
    """Mini-batch mean of per-image ``SSE + beta * KL``; returns ``(loss, sse mean, kl mean)``."""
    sse = (x_hat - x).square().flatten(1).sum(1)
    kl = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).flatten(1).sum(1)
    return (sse + beta * kl).mean(), sse.mean(), kl.mean()


@functools.lru_cache(maxsize=16)
def meta_net_bytes(backbone: str, layers: tuple[str, ...], size: int, latent: int) -> tuple[dict[str, int], int]:
    """The VAE built on the ``meta`` device for ``size`` x ``size`` inputs: its parameter counts
    (:func:`net_param_counts`) and the float32 bytes of every layer output of one image's forward pass.

    Raises:
        ConfigError: unknown backbone or layer.
    """
    from ..backbones import check_layers, layer_shapes, meta_trunk
    from ..memory.activations import leaf_output_bytes

    checked = check_layers(backbone, layers)
    ((channels, h, _),) = layer_shapes(backbone, checked, size).values()
    trunk = meta_trunk(backbone, checked)
    with torch.device("meta"):
        net = VaeNet(nn.Identity(), trunk, checked[0], channels, size // h, latent)
    return net_param_counts(net), leaf_output_bytes(net, (1, 3, size, size))


def net_param_counts(net: VaeNet) -> dict[str, int]:
    """Parameters of the encoder (normalisation, trunk, latent heads) and of the decoder."""
    enc = sum(p.numel() for m in net.encoder_modules() for p in m.parameters())
    return {"encoder": int(enc), "decoder": int(sum(p.numel() for p in net.decoder.parameters()))}
