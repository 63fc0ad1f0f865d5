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
- **Decoder** (``method.decoder``): a 1x1 convolution from the latent, then by default
  (``resnet18``) torchvision's ResNet18 trunk mirrored (residual blocks upsampling where the
  encoder's downsample, a 7x7 transposed convolution to RGB; :mod:`~padim_bench.methods.vae_net`),
  so that with the paper's ResNet18 encoder the VAE has 22.4 M float32 parameters (0.09 GB, the
  paper's Table VIII; the shipped configs set it); ``small`` is the 1.6 M-parameter decoder of the
  runs before issue 17 and the default, so that their records (which lack the key) keep their
  meaning and their hashes. A
  sigmoid ends both: the reconstruction lies in [0, 1] and is compared with the un-normalised
  input in [0, 1].
- **Loss** per image: sum of squared errors over (3, S, S) + ``beta`` * KL(q(z|x) || N(0, I))
  summed over the latent; averaged over the mini-batch. ``beta = 1`` is the standard VAE
  evidence lower bound with a unit-variance Gaussian likelihood up to constants (the paper gives no
  value).

The network, its loss and its sizes: :mod:`padim_bench.methods.vae_net`. Augmentation (sizes
relative to ``input_size``, order per sample), the seeded random stream and the resumable
checkpoints (``checkpoint_dir``): :mod:`padim_bench.methods.vae_train`.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import Tensor

from ..errors import ConfigError, PadimBenchError
from .base import METHODS, Method, MethodMemory, MethodSpec
from .vae_net import DECODERS, VaeNet, meta_net_bytes, net_param_counts, vae_loss  # noqa: F401  (vae_loss: importable here)
from .vae_train import TrainPosition, VaeTraining


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
        decoder: ``resnet18`` (the mirrored ResNet18, about 11.2 M parameters: the paper-sized
            VAE; every shipped config sets it) or ``small`` (about 1.6 M; the default, so that the
            records of the runs before this key, made with it, keep their meaning and hashes),
            see :mod:`.vae_net`.
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
    decoder: str = "small"

    #: keys that do not change the numbers: left out of the config hash (runs stay resumable)
    HASH_NEUTRAL = ("checkpoint_dir", "checkpoint_every", "progress")
    #: keys added later, left out of the config hash at the value of the runs before them: a
    #: record without ``decoder`` was made with the small one and keeps its hash and meaning
    HASH_OMITTED_AT = {"decoder": "small"}

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
        if self.decoder not in DECODERS:
            raise ConfigError(f"method.decoder: must be one of {', '.join(DECODERS)}, got {self.decoder!r}")
        if self.checkpoint_dir is not None and not self.checkpoint_dir.strip():
            raise ConfigError("method.checkpoint_dir: empty string; use null to disable checkpoints")

    def aug_sizes(self, side: int) -> tuple[int, int]:
        """``(resize, random crop)`` sides for training images of side ``side`` (rounded half up)."""
        scale = side / self.input_size
        return int(math.floor(self.aug_resize * scale + 0.5)), int(math.floor(self.aug_crop * scale + 0.5))


class Vae(VaeTraining, Method):
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
                         params.latent_channels, params.decoder)
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
        counts, _ = meta_net_bytes(backbone, tuple(layers), size, params.latent_channels, params.decoder)
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
        _, per_image = meta_net_bytes(backbone, tuple(layers), size, params.latent_channels, params.decoder)
        return MethodMemory(
            state={f"{k} parameters (float32)": v for k, v in state.items()},
            fit={"gradients and Adam moments": 3 * sum(state.values()), "training images (uint8)": n_train * 3 * size * size,
                 "training activations": 2 * params.batch_size * per_image},
            score={"activations of a batch": int(min(batch, n_test) * ACTIVATION_FRACTION * per_image)},
            runs_backbone=False)

    @classmethod
    def variant_parts(cls, settings: Any) -> list[str]:
        """``small decoder`` for the runs with the decoder before issue 17 (records without the key
        too), so that their rows are never averaged with the paper-sized VAE's."""
        return ["small decoder"] if settings.get("decoder", "small") == "small" else []

    def attach_progress(self, progress: Any) -> None:
        """Report training in ``progress`` (a ``rich.progress.Progress`` already started) instead of
        an own progress bar; a disabled Progress shows nothing (e.g. the CLI's ``--quiet``)."""
        self.progress_display = progress

    # ---------------------------------------------------------------------------------- training
    def fit(self, batches: Iterable[torch.Tensor]) -> None:
        """Keep the normal images (uint8) and train the VAE on augmented samples of them
        (:mod:`padim_bench.methods.vae_train`), resuming from a checkpoint where one matches.

        Args:
            batches: float32 ``(B, 3, S, S)`` in [0, 1], normal images only; consumed once.

        Raises:
            PadimBenchError: no training image, images of different sizes, a side not divisible by
                the encoder stride, or a diverging loss.
            KeyboardInterrupt: re-raised after writing a checkpoint (when ``checkpoint_dir`` is set).
        """
        t_start = time.perf_counter()
        data = self._training_images(batches)
        self.size = data.shape[-1]
        p = self.params
        key, meta = self._key(data)
        data = data.to(self.device)
        opt = torch.optim.Adam(self.net.parameters(), lr=p.lr)
        ckpt_path = Path(p.checkpoint_dir) / f"vae_{key}.pt" if p.checkpoint_dir else None
        resumed, can_save = self._resume(ckpt_path, key, opt)
        pos = resumed or TrainPosition()
        resumed_from = None if resumed is None else {"epoch": pos.epoch, "batch": pos.batch}
        self._train(data, opt, pos, t_start, (ckpt_path, key) if can_save else None)
        wall = time.perf_counter() - t_start
        self.info = self._fit_info(data, pos, resumed_from, wall, ckpt_path, key, meta)

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
        return net_param_counts(self.net)

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
            "decoder": self.params.decoder,
            "info": json.loads(json.dumps(self.info)),  # plain data only
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Raises PadimBenchError when the state is of another method, backbone or latent size."""
        if state.get("method") != self.name:
            raise PadimBenchError(f"state is for method {state.get('method')!r}, not {self.name!r}")
        decoder = state.get("decoder", "small")  # models saved before the decoder key had the small one
        if (state["backbone"], state["layer"], state["latent_channels"], decoder) != (
                self.extractor.name, self.layer, self.params.latent_channels, self.params.decoder):
            raise PadimBenchError(
                f"state was trained with {state['backbone']} {state['layer']} latent "
                f"{state['latent_channels']} decoder {decoder}, not {self.extractor.name} {self.layer} "
                f"latent {self.params.latent_channels} decoder {self.params.decoder}")
        self.net.load_state_dict(state["model"])
        self.net.eval()
        self.size = None if state["size"] is None else int(state["size"])
        self.info = dict(state["info"])

    def describe(self) -> dict[str, Any]:
        return dict(self.info) if self.info else {"param_counts": self.param_counts()}


METHODS.add("vae", MethodSpec(cls=Vae, params_class=VaeParams))
