"""VAE baseline of the PaDiM paper (Defard et al. 2020, Sec. IV-C, Tables II, VII, VIII).

The paper compares PaDiM with a convolutional variational auto-encoder: a ResNet18 encoder, an
8x8 convolutional latent and a decoder back to the 256x256 input, trained per category on
augmented normal images (rotation in [-2, 2] degrees, resize 292, random crop 282, centre crop
256; Adam, lr 1e-4, batch 32, 10,000 augmented images for 100 epochs). The anomaly map is the
per-pixel L2 reconstruction error ``||x - x_hat||_2`` over RGB; the runner's shared
:func:`~padim_bench.methods.base.postprocess` smooths it (Gaussian sigma 4) and takes its max as
the image score. There is no public code; these settings are confirmed by one source only.

Architecture (ours, where the paper is silent):

- **Encoder**: the configured backbone (``method.backbone``, ``method.layers`` = one layer, e.g.
  ``resnet18`` ``[layer4]``), *trainable*: a deep copy of the runner's frozen
  :class:`~padim_bench.backbones.FeatureExtractor` trunk and its input normalisation (ImageNet
  mean/std for torchvision models, [-1, 1] for EfficientNet-Lite) with gradients re-enabled, so it
  starts from exactly the weights the config asked for (``imagenet`` or seeded ``random``). Any
  registered backbone works whose layer has a power-of-two stride (``layer4`` = stride 32:
  256 -> 8x8). BatchNorm layers train with batch statistics and score with running ones.
- **Latent**: two 1x1 convolutions give ``mu`` and ``logvar`` (``latent_channels`` x S/32 x S/32);
  reparameterisation ``z = mu + exp(logvar / 2) * eps`` during training; ``z = mu`` for scoring.
- **Decoder**: a 1x1 convolution to 512 channels, then one stage per factor 2 of the stride
  (nearest 2x upsampling, 3x3 convolution, BatchNorm, ReLU; widths 512, 256, 128, 64, 32, 16),
  then a 3x3 convolution to RGB and a sigmoid: the reconstruction lies in [0, 1] and is compared
  with the un-normalised input in [0, 1].
- **Loss** per image: sum of squared errors over (3, S, S) + ``beta`` * KL(q(z|x) || N(0, I))
  summed over the latent; averaged over the mini-batch. ``beta = 1`` is the standard VAE
  evidence lower bound with a unit-variance Gaussian likelihood up to constants (the paper gives no
  value).

Augmentation sizes (``aug_resize`` 292, ``aug_crop`` 282) are relative to ``input_size`` (256,
the paper's). For training images of side S they are scaled by S / ``input_size`` and rounded;
the final centre crop is S itself. Order per sample: rotation (bilinear, zero fill), resize
(bilinear), random crop, centre crop. As described, the training images are therefore seen at a
scale 292/256 larger than the test images (which the runner only resizes to S); we keep the
paper's recipe as written.

Randomness: nothing uses the global RNG. Decoder/head initialisation runs under
``torch.random.fork_rng`` seeded with ``seed``. Every training draw comes from a
``torch.Generator`` whose seed is a hash of ``(seed, epoch)`` (the order of training images of
an epoch) or ``(seed, epoch, batch)`` (rotation angles, crop offsets, reparameterisation noise of
that mini-batch). The random stream therefore needs no saved state: a checkpoint records the
position ``(epoch, batch)`` and a resumed fit draws exactly what an uninterrupted one would, so
on the CPU (deterministic kernels) "2 epochs" and "1 epoch + resume 1 epoch" give identical
weights. On CUDA, cuDNN convolution backward passes are not bit-reproducible.

Checkpoints (``checkpoint_dir``): ``vae_<key>.pt`` holds model, optimizer, position, loss
history and wall time, written atomically every ``checkpoint_every`` epochs, after the last
epoch, and when training is interrupted (KeyboardInterrupt) between optimiser steps. ``key``
hashes everything that changes the training trajectory: the parameters except ``epochs``,
``checkpoint_dir``, ``checkpoint_every`` and ``progress`` (so a finished run can be extended to
more epochs), the seed, the encoder (backbone, weights source, layer) and the training images
(count, size, SHA-256 of their uint8 pixels). Loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor, nn
from torchvision.transforms import InterpolationMode

from ..errors import ConfigError, PadimBenchError
from .base import METHODS, Method, MethodMemory, MethodSpec

CHECKPOINT_VERSION = 1
DECODER_WIDTHS = (512, 256, 128, 64, 32, 16)  # widest first; one entry per upsampling stage + 1
# parameters that change nothing about the trajectory of the first `epochs` epochs
_RESUME_NEUTRAL = ("epochs", "checkpoint_dir", "checkpoint_every", "progress")


@dataclass(frozen=True)
class VaeParams:
    """The VAE baseline's own parameters (paper defaults; the CPU config shrinks the budget).

    Attributes:
        latent_channels: channels of the convolutional latent (spatial size S / encoder stride).
        beta: weight of the KL term in the loss (1 = the standard VAE bound).
        lr: Adam learning rate (paper: 1e-4).
        batch_size: mini-batch size of training (paper: 32); scoring uses ``runtime.batch_size``.
        n_augmented: augmented training samples drawn per epoch (paper: 10,000).
        epochs: training epochs (paper: 100).
        rotation_deg: rotation angle drawn uniformly in [-rotation_deg, rotation_deg] (paper: 2).
        aug_resize: side of the resize after rotation, for an ``input_size`` image (paper: 292).
        aug_crop: side of the random crop after the resize, for ``input_size`` (paper: 282).
        input_size: the image side the two sizes above refer to (paper: 256); for training images
            of side S they are scaled by S / input_size. The final centre crop is S.
        checkpoint_dir: folder of resumable training checkpoints, or ``None`` (off).
        checkpoint_every: save a checkpoint every this many epochs (also after the last one).
        progress: show a progress bar with the running loss while training.
    """

    latent_channels: int = 32
    beta: float = 1.0
    lr: float = 1e-4
    batch_size: int = 32
    n_augmented: int = 10000
    epochs: int = 100
    rotation_deg: float = 2.0
    aug_resize: int = 292
    aug_crop: int = 282
    input_size: int = 256
    checkpoint_dir: str | None = None
    checkpoint_every: int = 5
    progress: bool = True

    #: keys that do not change the numbers: left out of the config hash (runs stay resumable)
    HASH_NEUTRAL = ("checkpoint_dir", "checkpoint_every", "progress")

    def check(self) -> None:
        """Raises ConfigError on out-of-range values."""
        positive = ("latent_channels", "batch_size", "n_augmented", "epochs", "input_size",
                    "checkpoint_every")
        for key in positive:
            if getattr(self, key) < 1:
                raise ConfigError(f"method.{key}: must be >= 1, got {getattr(self, key)}")
        if not (0 <= self.beta < math.inf):
            raise ConfigError(f"method.beta: must be finite and >= 0, got {self.beta}")
        if not (0 < self.lr < math.inf):
            raise ConfigError(f"method.lr: must be finite and > 0, got {self.lr}")
        if not (0 <= self.rotation_deg <= 180):
            raise ConfigError(f"method.rotation_deg: must be in [0, 180], got {self.rotation_deg}")
        if not self.input_size <= self.aug_crop <= self.aug_resize:
            raise ConfigError(
                "method: need input_size <= aug_crop <= aug_resize (paper: 256 <= 282 <= 292), got "
                f"input_size {self.input_size}, aug_crop {self.aug_crop}, aug_resize {self.aug_resize}"
            )
        if self.checkpoint_dir is not None and not self.checkpoint_dir.strip():
            raise ConfigError("method.checkpoint_dir: empty string; use null to disable checkpoints")

    def aug_sizes(self, side: int) -> tuple[int, int]:
        """``(resize, random crop)`` sides for training images of side ``side`` (rounded half up)."""
        scale = side / self.input_size
        return int(math.floor(self.aug_resize * scale + 0.5)), int(math.floor(self.aug_crop * scale + 0.5))


def _derived_seed(*parts: Any) -> int:
    """A 63-bit seed from a tuple (counter-based randomness: no generator state to save)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


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


class Vae(Method):
    """The paper's VAE baseline (see the module doc).

    Fitted state: the whole network (encoder, heads, decoder, BatchNorm statistics).
    """

    name = "vae"
    display_name = "VAE"
    trains_backbone = True  # random initial weights are a setting: the encoder is trained
    default_layers = ("layer4",)  # the encoder ends at the last stage (stride 32: 256 -> 8x8)

    def __init__(self, params: VaeParams, extractor: Any, device: str | torch.device = "cpu", seed: int = 0):
        params.check()
        self.params = params
        self.extractor = extractor  # kept for the runner's record (name, weights, normalisation)
        self.device = torch.device(device)
        self.seed = int(seed)
        layers = list(extractor.layers)
        if len(layers) != 1:
            raise ConfigError(f"method.layers: the VAE encodes with exactly one backbone layer "
                              f"(e.g. [layer4]), got {layers}")
        self.layer = layers[0]
        self.stride = int(extractor.strides[self.layer])
        if self.stride < 2 or self.stride & (self.stride - 1):
            raise ConfigError(f"method.layers: {extractor.name} {self.layer} has stride {self.stride}; "
                              "the VAE decoder needs a power-of-two stride >= 2 (layer4: 32)")
        self.enc_channels = int(extractor.channels[self.layer])
        trunk = copy.deepcopy(extractor.trunk).cpu()
        normalize = copy.deepcopy(extractor.normalize).cpu()
        with torch.random.fork_rng(devices=[]):  # heads and decoder: seeded, global RNG untouched
            torch.manual_seed(self.seed)
            net = VaeNet(normalize, trunk, self.layer, self.enc_channels, self.stride,
                         params.latent_channels)
        self.net = net.to(self.device).requires_grad_(True)
        self.net.eval()
        self.progress_display = None  # a rich Progress the runner attaches (see attach_progress)
        self.size: int | None = None
        self.info: dict[str, Any] = {}

    @classmethod
    def check_embedding(cls, params: VaeParams, channels: dict[str, int]) -> None:
        """Raises ConfigError unless exactly one backbone layer is configured."""
        if len(channels) != 1:
            raise ConfigError(f"method.layers: the VAE encodes with exactly one backbone layer "
                              f"(e.g. [layer4]), got {list(channels)}")

    @classmethod
    def predict_state_nbytes(cls, params: VaeParams, backbone: str, layers: list[str], size: int,
                             n_train: int) -> dict[str, int]:
        """float32 bytes of the encoder and decoder parameters, from the architecture built on the
        ``meta`` device (no weights, no memory); equals :meth:`state_nbytes` after fitting and does
        not depend on ``size`` or ``n_train`` (paper Table VIII: 0.09 GB for its VAE).

        Raises:
            ConfigError: unknown backbone or layer, or not exactly one layer."""
        cls.check_embedding(params, {k: 0 for k in layers})
        counts, _ = _meta_net_bytes(backbone, tuple(layers), size, params.latent_channels)
        return {k: v * 4 for k, v in counts.items()}

    @classmethod
    def predict_memory(cls, params: VaeParams, backbone: str, layers: list[str], size: int, n_train: int,
                       n_test: int, batch: int) -> MethodMemory:
        """The VAE's memory (bytes; see :meth:`Method.predict_memory`); it trains its own copy of
        the trunk, so the frozen backbone's activations are not counted. State: encoder and
        decoder (:meth:`predict_state_nbytes`). Fit: gradients and Adam's two moments (3 x the
        parameters), the training images (uint8, kept for the epochs) and 2 x the layer outputs
        of a training batch (``method.batch_size``; kept for the backward pass, then their
        gradients). Scoring: ``ACTIVATION_FRACTION`` of a scoring batch's layer outputs."""
        from ..memory.activations import ACTIVATION_FRACTION

        state = cls.predict_state_nbytes(params, backbone, layers, size, n_train)
        _, per_image = _meta_net_bytes(backbone, tuple(layers), size, params.latent_channels)
        return MethodMemory(
            state={f"{k} parameters (float32)": v for k, v in state.items()},
            fit={"gradients and Adam moments": 3 * sum(state.values()), "training images (uint8)": n_train * 3 * size * size,
                 "training activations": 2 * params.batch_size * per_image},
            score={"activations of a batch": int(min(batch, n_test) * ACTIVATION_FRACTION * per_image)},
            runs_backbone=False)

    def attach_progress(self, progress: Any) -> None:
        """Report training in ``progress`` (a ``rich.progress.Progress`` already started) instead of
        an own progress bar; a disabled Progress shows nothing (e.g. the CLI's ``--quiet``)."""
        self.progress_display = progress

    # ---------------------------------------------------------------------------------- training
    def _augment(self, data: Tensor, idx: Tensor, g: torch.Generator) -> Tensor:
        """Augmented float32 batch on ``self.device`` for training images ``idx`` (draws from ``g``)."""
        p, side = self.params, data.shape[-1]
        resize, crop = p.aug_sizes(side)
        n = len(idx)
        angles = ((torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * p.rotation_deg).tolist()
        offsets = torch.randint(0, resize - crop + 1, (n, 2), generator=g).tolist()
        x = data[idx.to(data.device)].to(self.device).float().div_(255.0)
        x = torch.stack([TF.rotate(img, a, interpolation=InterpolationMode.BILINEAR) for img, a in zip(x, angles)])
        if resize != side:
            x = TF.resize(x, [resize, resize], interpolation=InterpolationMode.BILINEAR, antialias=True)
        x = torch.stack([img[:, t : t + crop, l : l + crop] for img, (t, l) in zip(x, offsets)])
        if crop != side:
            x = TF.center_crop(x, [side, side])
        return x.clamp_(0.0, 1.0).contiguous()

    def _epoch_order(self, n: int, epoch: int) -> Tensor:
        """Indices of the training images of an epoch: whole seeded permutations, cut to n_augmented."""
        g = torch.Generator().manual_seed(_derived_seed("vae-order", self.seed, epoch))
        reps = -(-self.params.n_augmented // n)
        return torch.cat([torch.randperm(n, generator=g) for _ in range(reps)])[: self.params.n_augmented]

    def _batch_generator(self, epoch: int, batch: int) -> torch.Generator:
        return torch.Generator().manual_seed(_derived_seed("vae-batch", self.seed, epoch, batch))

    def _backward(self, x: Tensor, g: torch.Generator, opt: torch.optim.Optimizer) -> float:
        """Loss and gradients of the augmented batch ``x`` (noise drawn from ``g``); no step yet."""
        shape = (len(x), self.params.latent_channels, x.shape[-2] // self.stride, x.shape[-1] // self.stride)
        noise = torch.randn(shape, generator=g).to(self.device)
        x_hat, mu, logvar = self.net(x, noise)
        loss, _, _ = vae_loss(x, x_hat, mu, logvar, self.params.beta)
        value = float(loss.item())
        if not math.isfinite(value):
            raise PadimBenchError(f"VAE training diverged (loss {value}); lower method.lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        return value

    def train_step(self, x: Tensor, g: torch.Generator, opt: torch.optim.Optimizer) -> float:
        """One optimiser step on the augmented batch ``x`` (train mode); returns its loss."""
        self.net.train()
        value = self._backward(x, g, opt)
        opt.step()
        return value

    def _key(self, data: Tensor) -> tuple[str, dict[str, Any]]:
        """Checkpoint key (16 hex digits) and what it hashes."""
        arr = data.cpu().contiguous().numpy()
        meta = {
            "version": CHECKPOINT_VERSION,
            "params": {k: v for k, v in asdict(self.params).items() if k not in _RESUME_NEUTRAL},
            "seed": self.seed,
            "encoder": {"backbone": self.extractor.name, "weights": self.extractor.weights,
                        "weights_source": str(self.extractor.weights_source), "layer": self.layer},
            "data": {"n": int(arr.shape[0]), "shape": list(arr.shape),
                     "sha256": hashlib.sha256(arr.tobytes()).hexdigest()},
        }
        return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16], meta

    def _save_checkpoint(self, path: Path, key: str, opt: torch.optim.Optimizer, pos: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = {
            "version": CHECKPOINT_VERSION,
            "key": key,
            "model": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            "optimizer": _to_cpu(opt.state_dict()),
            **pos,
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(blob, tmp)
        os.replace(tmp, path)

    def _load_checkpoint(self, path: Path, key: str) -> dict[str, Any] | None:
        if not path.is_file():
            return None
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - a damaged file must not stop the run
            warnings.warn(f"{path}: unreadable VAE checkpoint ({type(e).__name__}: {e}); training from scratch")
            return None
        if blob.get("version") != CHECKPOINT_VERSION or blob.get("key") != key:
            return None
        return blob

    def fit(self, batches: Iterable[torch.Tensor]) -> None:
        """Keep the normal images (uint8) and train the VAE on augmented samples of them.

        Args:
            batches: float32 ``(B, 3, S, S)`` in [0, 1], normal images only; consumed once.

        Raises:
            PadimBenchError: no training image, images of different sizes, a side not divisible by
                the encoder stride, or a diverging loss.
            KeyboardInterrupt: re-raised after writing a checkpoint (when ``checkpoint_dir`` is set).
        """
        t_start = time.perf_counter()
        chunks = [(b.detach().cpu().float().clamp(0, 1) * 255).round_().to(torch.uint8) for b in batches]
        if not chunks:
            raise PadimBenchError("the VAE needs at least 1 training image, got 0")
        shapes = {tuple(c.shape[1:]) for c in chunks}
        if len(shapes) != 1:
            raise PadimBenchError(f"VAE training images have different sizes: {sorted(shapes)}")
        data = torch.cat(chunks)
        del chunks
        _, c, h, w = data.shape
        if c != 3 or h != w or h % self.stride:
            raise PadimBenchError(
                f"VAE training images are {c}x{h}x{w}; need 3 x S x S with S divisible by the encoder "
                f"stride {self.stride} (e.g. dataset.resize 256, crop null)"
            )
        self.size = h
        p = self.params
        key, meta = self._key(data)
        data = data.to(self.device)
        opt = torch.optim.Adam(self.net.parameters(), lr=p.lr)
        n_batches = -(-p.n_augmented // p.batch_size)
        epoch, batch, history = 0, 0, []
        partial_sum, partial_n, wall_before = 0.0, 0, 0.0
        resumed_from = None
        ckpt_path = Path(p.checkpoint_dir) / f"vae_{key}.pt" if p.checkpoint_dir else None
        can_save = ckpt_path is not None
        if ckpt_path is not None:
            blob = self._load_checkpoint(ckpt_path, key)
            if blob is not None and blob["epoch"] + (blob["batch"] > 0) > p.epochs:
                warnings.warn(f"{ckpt_path} is further trained ({blob['epoch']} epochs) than "
                              f"method.epochs = {p.epochs}; training from scratch without checkpoints "
                              "(the file is kept)")
                blob, can_save = None, False
            if blob is not None:
                self.net.load_state_dict(blob["model"])
                opt.load_state_dict(blob["optimizer"])
                epoch, batch = int(blob["epoch"]), int(blob["batch"])
                history = [float(v) for v in blob["epoch_losses"]]
                partial_sum, partial_n = float(blob["partial_loss_sum"]), int(blob["partial_n"])
                wall_before = float(blob["wall_s_total"])
                resumed_from = {"epoch": epoch, "batch": batch}

        def position(ep: int, bt: int) -> dict[str, Any]:
            return {"epoch": ep, "batch": bt, "epoch_losses": list(history),
                    "partial_loss_sum": partial_sum, "partial_n": partial_n,
                    "wall_s_total": wall_before + time.perf_counter() - t_start,
                    "image_iterations": ep * p.n_augmented + min(bt * p.batch_size, p.n_augmented)}

        # Ctrl-C may land anywhere; `commit` is True only while parameters, optimizer and position
        # disagree (inside the step and its bookkeeping), and no checkpoint is written then.
        commit = False
        total = p.epochs * n_batches
        bar = _Bar(self.progress_display, p.progress, total, epoch * n_batches + batch)
        self.net.train()
        try:
            with bar:
                while epoch < p.epochs:
                    order = self._epoch_order(len(data), epoch)
                    while batch < n_batches:
                        idx = order[batch * p.batch_size : (batch + 1) * p.batch_size]
                        g = self._batch_generator(epoch, batch)
                        loss = self._backward(self._augment(data, idx, g), g, opt)
                        commit = True
                        opt.step()
                        partial_sum += loss * len(idx)
                        partial_n += len(idx)
                        batch += 1
                        commit = False
                        bar.advance(f"VAE epoch {epoch + 1}/{p.epochs} loss {partial_sum / partial_n:.1f}")
                    commit = True
                    history.append(partial_sum / partial_n)
                    partial_sum, partial_n = 0.0, 0
                    epoch, batch = epoch + 1, 0
                    commit = False
                    if can_save and (epoch % p.checkpoint_every == 0 or epoch == p.epochs):
                        self._save_checkpoint(ckpt_path, key, opt, position(epoch, 0))
        except KeyboardInterrupt:
            if can_save and not commit:
                self._save_checkpoint(ckpt_path, key, opt, position(epoch, batch))
            raise
        finally:
            self.net.eval()
        wall = time.perf_counter() - t_start
        done = p.epochs * p.n_augmented
        self.info = {
            "n_train": int(len(data)),
            "image_size": h,
            "latent_shape": [p.latent_channels, h // self.stride, w // self.stride],
            "encoder": {"backbone": self.extractor.name, "weights": self.extractor.weights,
                        "layer": self.layer, "stride": self.stride, "channels": self.enc_channels},
            "augmentation": {"rotation_deg": p.rotation_deg, "resize": p.aug_sizes(h)[0],
                             "random_crop": p.aug_sizes(h)[1], "centre_crop": h},
            "n_augmented": p.n_augmented,
            "epochs": p.epochs,
            "batch_size": p.batch_size,
            "lr": p.lr,
            "beta": p.beta,
            "image_iterations": done,
            "image_iterations_this_fit": done - (0 if resumed_from is None else
                                                 resumed_from["epoch"] * p.n_augmented
                                                 + min(resumed_from["batch"] * p.batch_size, p.n_augmented)),
            "final_loss": history[-1] if history else None,
            "epoch_losses": history,
            "wall_s": wall,
            "wall_s_total": wall_before + wall,
            "resumed_from_epoch": None if resumed_from is None else resumed_from["epoch"],
            "resumed_from_batch": None if resumed_from is None else resumed_from["batch"],
            "checkpoint": str(ckpt_path) if ckpt_path is not None else None,
            "checkpoint_key": key,
            "train_data_sha256": meta["data"]["sha256"],
            "param_counts": self.param_counts(),
        }

    # ---------------------------------------------------------------------------------- scoring
    @torch.inference_mode()
    def reconstruct(self, images: Tensor) -> Tensor:
        """Deterministic reconstruction (``z = mu``, eval mode) of ``images`` on ``self.device``."""
        self.net.eval()
        return self.net(images.to(self.device, torch.float32))[0]

    @torch.inference_mode()
    def score(self, images: torch.Tensor) -> torch.Tensor:
        """Per-pixel L2 reconstruction error over RGB.

        Args:
            images: float32 ``(B, 3, S, S)`` in [0, 1], S the training side.

        Returns:
            float32 ``(B, S, S)`` on the CPU, >= 0.
        """
        if self.size is None:
            raise PadimBenchError("VAE model is not fitted")
        if images.shape[-1] != self.size or images.shape[-2] != self.size:
            raise PadimBenchError(f"VAE was trained on {self.size}x{self.size} images, got "
                                  f"{tuple(images.shape[-2:])}")
        x = images.to(self.device, torch.float32)
        return (self.reconstruct(x) - x).square().sum(1).sqrt().float().cpu()

    # ------------------------------------------------------------------------------------ state
    def param_counts(self) -> dict[str, int]:
        """Parameters of the encoder (backbone trunk + latent heads) and of the decoder."""
        return _param_counts(self.net)

    def state_nbytes(self) -> dict[str, int]:
        """float32 bytes of the encoder's and decoder's parameters (what the paper's Table VIII
        counts; BatchNorm running statistics are not parameters and are left out)."""
        return {k: v * 4 for k, v in self.param_counts().items()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "method": self.name,
            "model": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            "size": self.size,
            "backbone": self.extractor.name,
            "layer": self.layer,
            "latent_channels": self.params.latent_channels,
            "info": json.loads(json.dumps(self.info)),  # plain data only
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Raises PadimBenchError when the state is of another method, backbone or latent size."""
        if state.get("method") != self.name:
            raise PadimBenchError(f"state is for method {state.get('method')!r}, not {self.name!r}")
        if (state["backbone"], state["layer"], state["latent_channels"]) != (
                self.extractor.name, self.layer, self.params.latent_channels):
            raise PadimBenchError(
                f"state was trained with {state['backbone']} {state['layer']} latent "
                f"{state['latent_channels']}, not {self.extractor.name} {self.layer} latent "
                f"{self.params.latent_channels}")
        self.net.load_state_dict(state["model"])
        self.net.eval()
        self.size = None if state["size"] is None else int(state["size"])
        self.info = dict(state["info"])

    def describe(self) -> dict[str, Any]:
        return dict(self.info) if self.info else {"param_counts": self.param_counts()}


@functools.lru_cache(maxsize=16)
def _meta_net_bytes(backbone: str, layers: tuple[str, ...], size: int, latent: int) -> tuple[dict[str, int], int]:
    """The VAE built on the ``meta`` device for ``size`` x ``size`` inputs: its parameter counts
    (:func:`_param_counts`) and the float32 bytes of every layer output of one image's forward pass.

    Raises:
        ConfigError: unknown backbone or layer.
    """
    from ..backbones import layer_shapes
    from ..memory.activations import leaf_output_bytes, meta_trunk

    ((channels, h, _),) = layer_shapes(backbone, layers, size).values()
    trunk, checked = meta_trunk(backbone, layers)
    with torch.device("meta"):
        net = VaeNet(nn.Identity(), trunk, checked[0], channels, size // h, latent)
    return _param_counts(net), leaf_output_bytes(net, (1, 3, size, size))


def _param_counts(net: VaeNet) -> dict[str, int]:
    enc = sum(p.numel() for m in net.encoder_modules() for p in m.parameters())
    return {"encoder": int(enc), "decoder": int(sum(p.numel() for p in net.decoder.parameters()))}


def _to_cpu(obj: Any) -> Any:
    """Tensors moved to the CPU inside nested dicts / lists (optimizer state)."""
    if isinstance(obj, Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


class _Bar:
    """Training progress: a task in an attached rich Progress, an own transient bar, or nothing."""

    def __init__(self, attached: Any, enabled: bool, total: int, completed: int) -> None:
        self.progress, self.own, self.task = None, False, None
        if not enabled:
            return
        if attached is not None:
            self.progress = attached
        else:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
                TimeRemainingColumn
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TimeRemainingColumn(),
                                     console=Console(stderr=True), transient=True)
            self.own = True
        self.task = self.progress.add_task("VAE training", total=total, completed=completed)

    def __enter__(self) -> "_Bar":
        if self.own:
            self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is None:
            return
        if self.own:
            self.progress.stop()
        else:
            self.progress.remove_task(self.task)

    def advance(self, description: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=1, description=description)


METHODS.add("vae", MethodSpec(cls=Vae, params_class=VaeParams))
