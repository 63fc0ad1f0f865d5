"""The VAE baseline's network: encoder (normalisation + backbone trunk), latent heads and decoder,
its loss, and its sizes built on the ``meta`` device (the architecture is described in
:mod:`padim_bench.methods.vae`).

Decoders (``method.decoder``):

- ``resnet18`` (the shipped configs'): torchvision's ResNet18 trunk mirrored, so that the paper's VAE (ResNet18
  encoder, 8x8 latent, decoder back to 256x256) has about 22 M float32 parameters, the 0.09 GB of
  its Table VIII. Each residual stage of the encoder (widths 512, 256, 128, 64 at strides 32, 16,
  8, 4; two blocks each) becomes two :class:`UpBlock` (a BasicBlock run backwards: the 2x
  upsampling sits where the encoder's stride-2 convolution was); the stem is mirrored by a 2x
  nearest upsampling (the max pool) and a 7x7 transposed convolution with stride 2 to RGB (conv1).
  An encoder layer of stride 2**k uses the stages of stride <= 2**k; strides above 32 get one more
  upsampling 512-wide block per factor 2. The paper gives no decoder; this is our choice.
- ``small`` (the default of :class:`~padim_bench.methods.vae.VaeParams`, for the records made before
  the key): the decoder of the runs before issue 17 (about 1.6 M parameters): one stage per
  factor 2 (nearest 2x upsampling, 3x3 convolution, BatchNorm, ReLU; widths 512, 256, 128, 64, 32,
  16) and a 3x3 convolution to RGB. Kept to reproduce those runs and for quick CPU checks.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor, nn

SMALL_WIDTHS = (512, 256, 128, 64, 32, 16)  # widest first; one entry per upsampling stage + 1
RESNET18_STAGES = ((32, 512), (16, 256), (8, 128), (4, 64))  # (stride, width) of ResNet18's layer4..layer1
DECODERS = ("resnet18", "small")


class UpBlock(nn.Module):
    """torchvision's BasicBlock mirrored: ``conv3x3(c_in, c_in)``-BN-ReLU, a 2x nearest upsampling
    when ``up``, ``conv3x3(c_in, c_out)``-BN, plus a shortcut (identity, or upsampling and
    ``conv1x1(c_in, c_out)``-BN when the shape changes), then ReLU.
    ``(N, c_in, h, w)`` -> ``(N, c_out, 2h, 2w)`` (``up``) or ``(N, c_out, h, w)``."""

    def __init__(self, c_in: int, c_out: int, up: bool) -> None:
        super().__init__()
        upsample = nn.Upsample(scale_factor=2, mode="nearest") if up else nn.Identity()
        self.body = nn.Sequential(nn.Conv2d(c_in, c_in, 3, padding=1, bias=False), nn.BatchNorm2d(c_in),
                                  nn.ReLU(inplace=True), upsample,
                                  nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut: nn.Module = nn.Identity()
        if up or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest") if up else nn.Identity(),
                                          nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


def resnet18_decoder(latent_channels: int, stride: int) -> list[nn.Module]:
    """The mirrored ResNet18 decoder (module doc) from ``latent_channels`` at ``1/stride`` to RGB in
    [0, 1] at full size, as a list of modules (the first is the 1x1 convolution from the latent)."""
    stages = [(s, w) for s, w in RESNET18_STAGES if s <= stride]
    first = stages[0][1] if stages else 64
    layers: list[nn.Module] = [nn.Conv2d(latent_channels, first, 1), nn.ReLU(inplace=True)]
    for _ in range(int(round(math.log2(stride))) - 5):  # strides above ResNet18's 32
        layers.append(UpBlock(first, first, up=True))
    for i, (_, width) in enumerate(stages):
        nxt = stages[i + 1][1] if i + 1 < len(stages) else width
        layers += [UpBlock(width, width, up=False), UpBlock(width, nxt, up=i + 1 < len(stages))]
    if stride >= 4:
        layers.append(nn.Upsample(scale_factor=2, mode="nearest"))  # the stem's max pool
    layers += [nn.ConvTranspose2d(64, 3, 7, stride=2, padding=3, output_padding=1),
               nn.Sigmoid()]  # conv1: 7x7, stride 2
    return layers


def small_decoder(latent_channels: int, stride: int) -> list[nn.Module]:
    """The ``small`` decoder (module doc), as a list of modules."""
    stages = int(round(math.log2(stride)))
    widths = [SMALL_WIDTHS[min(i, len(SMALL_WIDTHS) - 1)] for i in range(stages + 1)]
    layers: list[nn.Module] = [nn.Conv2d(latent_channels, widths[0], 1), nn.ReLU(inplace=True)]
    for c_in, c_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Upsample(scale_factor=2, mode="nearest"),
                   nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                   nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return layers + [nn.Conv2d(widths[-1], 3, 3, padding=1), nn.Sigmoid()]


class VaeNet(nn.Module):
    """Encoder (normalisation + backbone trunk), latent heads and decoder.

    Args:
        normalize: module mapping [0, 1] RGB to the encoder's input normalisation.
        trunk: module returning ``{layer: (N, C, S/stride, S/stride)}``.
        layer: the key of ``trunk``'s output used as the encoder output.
        enc_channels: channels of that output.
        stride: its stride (a power of two >= 2).
        latent_channels: channels of ``mu`` / ``logvar``.
        decoder: ``resnet18`` (default) or ``small`` (module doc).

    Raises:
        ValueError: unknown ``decoder``.
    """

    def __init__(self, normalize: nn.Module, trunk: nn.Module, layer: str, enc_channels: int,
                 stride: int, latent_channels: int, decoder: str = "resnet18") -> None:
        super().__init__()
        self.layer = layer
        self.normalize = normalize
        self.trunk = trunk
        self.mu_head = nn.Conv2d(enc_channels, latent_channels, 1)
        self.logvar_head = nn.Conv2d(enc_channels, latent_channels, 1)
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        build = resnet18_decoder if decoder == "resnet18" else small_decoder
        self.decoder = nn.Sequential(*build(latent_channels, stride))

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
def meta_net_bytes(backbone: str, layers: tuple[str, ...], size: int, latent: int,
                   decoder: str = "resnet18") -> tuple[dict[str, int], int]:
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
        net = VaeNet(nn.Identity(), trunk, checked[0], channels, size // h, latent, decoder)
    return net_param_counts(net), leaf_output_bytes(net, (1, 3, size, size))


def net_param_counts(net: VaeNet) -> dict[str, int]:
    """Parameters of the encoder (normalisation, trunk, latent heads) and of the decoder."""
    enc = sum(p.numel() for m in net.encoder_modules() for p in m.parameters())
    return {"encoder": int(enc), "decoder": int(sum(p.numel() for p in net.decoder.parameters()))}
