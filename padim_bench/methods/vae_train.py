"""Training of the VAE baseline (:class:`~padim_bench.methods.vae.Vae`): augmentation, the
counter-based random stream, the training loop and its resumable checkpoints.

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

import hashlib
import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor
from torchvision.transforms import InterpolationMode

from ..errors import PadimBenchError
from ..store.files import WriteError
from .vae_net import vae_loss

CHECKPOINT_VERSION = 1
# parameters that change nothing about the trajectory of the first `epochs` epochs
_RESUME_NEUTRAL = ("epochs", "checkpoint_dir", "checkpoint_every", "progress")


def _derived_seed(*parts: Any) -> int:
    """A 63-bit seed from a tuple (counter-based randomness: no generator state to save)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@dataclass
class TrainPosition:
    """Where training stands: the next ``(epoch, batch)``, the mean loss of every finished epoch,
    the running loss sum and image count of the current one, and the wall seconds of earlier fits
    (a resumed checkpoint's)."""

    epoch: int = 0
    batch: int = 0
    history: list[float] = field(default_factory=list)
    partial_sum: float = 0.0
    partial_n: int = 0
    wall_before: float = 0.0

    @classmethod
    def from_checkpoint(cls, blob: dict[str, Any]) -> "TrainPosition":
        """The position a checkpoint written by :meth:`record` holds."""
        return cls(int(blob["epoch"]), int(blob["batch"]), [float(v) for v in blob["epoch_losses"]],
                   float(blob["partial_loss_sum"]), int(blob["partial_n"]), float(blob["wall_s_total"]))

    def record(self, t_start: float, n_augmented: int, batch_size: int) -> dict[str, Any]:
        """The checkpoint's position fields; ``t_start`` is this fit's ``time.perf_counter()`` start."""
        return {"epoch": self.epoch, "batch": self.batch, "epoch_losses": list(self.history),
                "partial_loss_sum": self.partial_sum, "partial_n": self.partial_n,
                "wall_s_total": self.wall_before + time.perf_counter() - t_start,
                "image_iterations": self.epoch * n_augmented + min(self.batch * batch_size, n_augmented)}


class VaeTraining:
    """The training half of :class:`~padim_bench.methods.vae.Vae` (a mixin): it uses the method's
    ``params``, ``net``, ``device``, ``seed``, ``stride``, ``layer``, ``enc_channels``,
    ``extractor`` and ``progress_display`` and its ``param_counts()``.
    """

    params: Any
    net: Any
    device: torch.device
    seed: int
    stride: int
    layer: str
    enc_channels: int
    extractor: Any
    progress_display: Any

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
        try:
            torch.save(blob, tmp)
            os.replace(tmp, path)
        except (OSError, RuntimeError) as e:  # a full disk: no partial checkpoint is left
            tmp.unlink(missing_ok=True)
            raise WriteError(path, e) from e

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

    def _training_images(self, batches: Iterable[torch.Tensor]) -> Tensor:
        """The normal images as one uint8 ``(N, 3, S, S)`` CPU tensor.

        Raises:
            PadimBenchError: no training image, images of different sizes, or a side not
                divisible by the encoder stride."""
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
        return data

    def _resume(self, path: Path | None, key: str, opt: torch.optim.Optimizer) -> tuple[TrainPosition | None, bool]:
        """Load the checkpoint at ``path`` into the network and ``opt``; returns its position
        (``None``: none usable, training starts from scratch) and whether checkpoints may be
        written (not over a checkpoint trained further than ``epochs``, which is kept)."""
        p = self.params
        if path is None:
            return None, False
        blob = self._load_checkpoint(path, key)
        if blob is not None and blob["epoch"] + (blob["batch"] > 0) > p.epochs:
            warnings.warn(f"{path} is further trained ({blob['epoch']} epochs) than "
                          f"method.epochs = {p.epochs}; training from scratch without checkpoints "
                          "(the file is kept)")
            return None, False
        if blob is None:
            return None, True
        self.net.load_state_dict(blob["model"])
        opt.load_state_dict(blob["optimizer"])
        return TrainPosition.from_checkpoint(blob), True

    def _train(self, data: Tensor, opt: torch.optim.Optimizer, pos: TrainPosition, t_start: float,
               checkpoint: tuple[Path, str] | None) -> None:
        """Train from ``pos`` (advanced in place) to ``params.epochs`` on augmented samples of
        ``data`` (uint8 on ``self.device``), writing ``checkpoint`` (``(path, key)``, or ``None``:
        off) every ``checkpoint_every`` epochs, after the last one and on KeyboardInterrupt.

        Raises:
            PadimBenchError: a diverging loss.
            KeyboardInterrupt: re-raised after writing the checkpoint."""
        p = self.params
        n_batches = -(-p.n_augmented // p.batch_size)

        def save() -> None:
            self._save_checkpoint(checkpoint[0], checkpoint[1], opt, pos.record(t_start, p.n_augmented, p.batch_size))

        # Ctrl-C may land anywhere; `commit` is True only while parameters, optimizer and position
        # disagree (inside the step and its bookkeeping), and no checkpoint is written then.
        commit = False
        total = p.epochs * n_batches
        bar = _Bar(self.progress_display, p.progress, total, pos.epoch * n_batches + pos.batch)
        self.net.train()
        try:
            with bar:
                while pos.epoch < p.epochs:
                    order = self._epoch_order(len(data), pos.epoch)
                    while pos.batch < n_batches:
                        idx = order[pos.batch * p.batch_size : (pos.batch + 1) * p.batch_size]
                        g = self._batch_generator(pos.epoch, pos.batch)
                        loss = self._backward(self._augment(data, idx, g), g, opt)
                        commit = True
                        opt.step()
                        pos.partial_sum += loss * len(idx)
                        pos.partial_n += len(idx)
                        pos.batch += 1
                        commit = False
                        bar.advance(f"VAE epoch {pos.epoch + 1}/{p.epochs} loss {pos.partial_sum / pos.partial_n:.1f}")
                    commit = True
                    pos.history.append(pos.partial_sum / pos.partial_n)
                    pos.partial_sum, pos.partial_n = 0.0, 0
                    pos.epoch, pos.batch = pos.epoch + 1, 0
                    commit = False
                    if checkpoint is not None and (pos.epoch % p.checkpoint_every == 0 or pos.epoch == p.epochs):
                        save()
        except KeyboardInterrupt:
            if checkpoint is not None and not commit:
                save()
            raise
        finally:
            self.net.eval()

    def _fit_info(self, data: Tensor, pos: TrainPosition, resumed_from: dict[str, int] | None, wall: float,
                  ckpt_path: Path | None, key: str, meta: dict[str, Any]) -> dict[str, Any]:
        """What :meth:`describe` reports after a fit of ``wall`` seconds on ``data``."""
        p = self.params
        h, w = data.shape[-2:]
        history = pos.history
        done = p.epochs * p.n_augmented
        return {
            "n_train": int(len(data)),
            "image_size": h,
            "latent_shape": [p.latent_channels, h // self.stride, w // self.stride],
            "encoder": {"backbone": self.extractor.name, "weights": self.extractor.weights,
                        "layer": self.layer, "stride": self.stride, "channels": self.enc_channels},
            "decoder": p.decoder,
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
            "wall_s_total": pos.wall_before + wall,
            "resumed_from_epoch": None if resumed_from is None else resumed_from["epoch"],
            "resumed_from_batch": None if resumed_from is None else resumed_from["batch"],
            "checkpoint": str(ckpt_path) if ckpt_path is not None else None,
            "checkpoint_key": key,
            "train_data_sha256": meta["data"]["sha256"],
            "param_counts": self.param_counts(),
        }


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
