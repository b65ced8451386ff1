"""The training loop: one process, or many through torchrun and DistributedDataParallel.

``torchrun --nproc_per_node=N -m mobilenet train ...`` sets the environment that PyTorch's own
process group reads; each process trains on its shard of every global batch, gradients are averaged
by DDP, metrics are summed across processes, and only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader
from tqdm import tqdm

from mobilenet.checkpoint import Position, load_checkpoint, save_checkpoint
from mobilenet.data import ShardedSampler, collate
from mobilenet.deploy import load_deployed
from mobilenet.evaluate import EvalResult, evaluate_dataset
from mobilenet.model import MobileNet
from mobilenet.qat import INT8_IR, calibration_batch, export_int8, float_model, prepare_qat, restore_qat
from mobilenet.recipes import TrainConfig
from mobilenet.runlog import RunLog
from mobilenet.setup import build_optimizer, build_schedule, ema_update, mix_batch, prepare


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


@dataclass(frozen=True)
class TrainResult:
    model: MobileNet  # the trained weights (the EMA when it is on), on this process; float after qat
    run_dir: Path
    epochs: int
    steps: int
    val: EvalResult | None
    best_top1: float
    wall_seconds: float
    train_images_per_s: float
    skipped_images: dict[str, int]
    int8: EvalResult | None = None  # qat: the int8 OpenVINO IR (run_dir/int8.xml) on the validation images


def _distributed(config: TrainConfig) -> tuple[int, int, torch.device]:
    """Join torchrun's process group when launched by it; pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = config.device in ("auto", "cuda") and torch.cuda.is_available()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu" if config.device == "auto" else config.device)


def _check_qat(config: TrainConfig, resume: str | Path | None) -> None:
    if config.compile:
        raise ValueError("qat does not combine with compile (NNCF's hooks): set --compile false")
    if config.weights is None and resume is None:  # in eval mode an untrained network outputs ~0: nothing to calibrate
        raise ValueError("qat fine-tunes trained weights: pass --weights (a float run's best.safetensors, say)")


class Trainer:
    """One run: built from a config (or from a run directory to resume), then :meth:`run`."""

    def __init__(
        self,
        config: TrainConfig,
        resume: str | Path | None = None,
        progress: bool = True,
        model: nn.Module | None = None,
    ) -> None:
        if resume is not None:
            config = replace(TrainConfig.from_json(Path(resume) / "config.json"), out=str(resume))
        self.config, self.progress = config, progress
        self.rank, self.world, self.device = _distributed(config)
        if config.batch_size % (self.world * config.accum_steps):
            raise ValueError(
                f"batch_size {config.batch_size} must be a multiple of processes x accum_steps "
                f"({self.world} x {config.accum_steps})"
            )
        if config.qat:  # before anything is read or written
            _check_qat(config, resume)
        torch.manual_seed(config.seed)  # the same initial weights in every process
        self.model, self.data = prepare(config, model)
        self.log = RunLog(config, self.data, enabled=self.rank == 0, resuming=resume is not None)
        if config.qat:
            self.model = self._quantization_aware(resume)
        self.micro_batch = config.batch_size // (self.world * config.accum_steps)
        self.steps_per_epoch = len(self.data.train) // config.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"{len(self.data.train)} training images make no batch of {config.batch_size}: lower --batch-size"
            )
        if config.sync_bn and self.world > 1:
            if self.device.type != "cuda":
                raise ValueError("sync_bn needs CUDA: PyTorch's SyncBatchNorm does not run on the CPU")
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.memory_format = torch.channels_last if config.channels_last else torch.preserve_format
        self.model.to(self.device, memory_format=self.memory_format)
        self.optimizer = build_optimizer(config, self.model)
        self.schedule = build_schedule(config, self.optimizer, self.steps_per_epoch)
        self.ema = None
        if config.ema_decay:
            self.ema = AveragedModel(self.model, multi_avg_fn=ema_update(config.ema_decay), use_buffers=True)
        fp16 = config.amp and self.device.type == "cuda" and config.amp_dtype == "float16"
        self.scaler = torch.amp.GradScaler(self.device.type) if fp16 else None
        self.autocast_dtype = torch.float16 if fp16 else torch.bfloat16
        self.position = Position(0, 0, 0)
        self.stats = torch.zeros(4, dtype=torch.float64)  # this epoch: loss sum, correct, images, skipped
        if resume is not None:
            self._restore(Path(resume))
        else:
            torch.manual_seed(config.seed + 1 + self.rank)  # dropout differs between processes
        net = nn.parallel.DistributedDataParallel(self.model) if self.world > 1 else self.model
        self.net = torch.compile(net) if config.compile else net

    def _quantization_aware(self, resume: str | Path | None) -> MobileNet:
        if resume is not None:
            return restore_qat(self.model, Path(resume))
        # Every process calibrates on the same images; DDP then starts all from rank 0's values anyway.
        run_dir = self.log.run_dir if self.rank == 0 else None
        return prepare_qat(self.model, calibration_batch(self.data.train), run_dir)

    @property
    def final_model(self) -> MobileNet:
        """The weights to evaluate and ship: the EMA when it is on."""
        return self.ema.module if self.ema is not None else self.model

    def _restore(self, run_dir: Path) -> None:
        state, self.position = load_checkpoint(run_dir, self.model)
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        if self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.stats = state["epoch_stats"]
        self.log.restore(state["log"])
        if self.rank == 0:
            torch.set_rng_state(state["rng"])  # dropout goes on as if never interrupted
        else:
            torch.manual_seed(self.config.seed + 1 + self.rank + 1000 * self.position.step)

    def _diverged(self, what: str) -> TrainingDiverged:
        return TrainingDiverged(
            f"{what} at step {self.position.step}: training stopped and the last checkpoint in "
            f"{self.log.run_dir} is intact (lower --lr, or try --amp false)"
        )

    def _check_weights(self) -> None:
        # A finite loss can still come with an update that overflowed: never save such weights.
        tensors = self.model.state_dict().values()  # parameters and BatchNorm statistics
        if not all(torch.isfinite(t).all() for t in tensors if t.is_floating_point()):
            raise self._diverged("the weights became infinite or NaN")

    def _checkpoint(self, position: Position) -> None:
        self._check_weights()
        if self.rank == 0:
            state = {
                "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(),
                "epoch_stats": self.stats,
                "rng": torch.get_rng_state(),
                "log": self.log.state(),
            }
            if self.ema is not None:
                state["ema"] = self.ema.state_dict()
            if self.scaler is not None:
                state["scaler"] = self.scaler.state_dict()
            save_checkpoint(self.log.run_dir, self.model, state, position)
        if self.world > 1:
            dist.barrier()

    def _loader(self, epoch: int, first_step: int) -> DataLoader:
        sampler = ShardedSampler(
            len(self.data.train),
            self.micro_batch,
            self.config.seed,
            epoch,
            self.rank,
            self.world,
            start=first_step * self.config.accum_steps,
        )
        # Its own generator: a DataLoader otherwise draws from the global RNG, which drives dropout and is
        # restored on resume, so an extra draw would shift every later step.
        return DataLoader(
            self.data.train,
            batch_size=self.micro_batch,
            sampler=sampler,
            collate_fn=collate,
            num_workers=self.config.workers,
            generator=torch.Generator().manual_seed(epoch),
        )

    def _micro_step(self, images: torch.Tensor, labels: torch.Tensor, seed: int, sync: bool) -> None:
        """Forward and backward of one micro-batch; gradients sync across processes only if ``sync``."""
        config = self.config
        images = images.to(self.device, memory_format=self.memory_format)
        labels = labels.to(self.device)
        images, targets = mix_batch(config, images, labels, len(self.data.classes), torch.Generator().manual_seed(seed))
        with (
            contextlib.nullcontext() if sync or self.world == 1 else self.net.no_sync(),
            torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=config.amp),
        ):
            logits = self.net(images)
            loss = nn.functional.cross_entropy(logits.float(), targets, label_smoothing=config.label_smoothing)
        finite = torch.isfinite(loss.detach()).float()
        if self.world > 1:  # every process stops together
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if not finite.item():
            raise self._diverged(f"the loss became {loss.item()}")
        (self.scaler.scale(loss) if self.scaler else loss).div(config.accum_steps).backward()
        self.stats += torch.tensor(
            [loss.item() * len(labels), (logits.argmax(1) == labels).sum().item(), len(labels), 0]
        )

    def _step(self, batches) -> None:
        """One optimizer step over ``accum_steps`` micro-batches."""
        accum = self.config.accum_steps
        for micro in range(accum):
            images, labels, skipped = next(batches)
            self.stats[3] += skipped
            if len(labels):
                seed = (self.config.seed * 1_000_003 + self.position.step) * 131 + micro * 17 + self.rank
                self._micro_step(images, labels, seed, sync=micro == accum - 1)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def _epoch(self, epoch: int) -> None:
        first_step = self.position.step_in_epoch
        if first_step == 0:
            self.stats.zero_()
        batches = iter(self._loader(epoch, first_step))
        self.net.train()
        if self.config.freeze_bn:
            for module in self.model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        bar = tqdm(
            range(first_step, self.steps_per_epoch),
            desc=f"epoch {epoch + 1}/{self.config.epochs}",
            unit="step",
            initial=first_step,
            total=self.steps_per_epoch,
            disable=not (self.progress and self.rank == 0),
        )
        start, images_per_s = time.perf_counter(), 0.0
        every = self.config.checkpoint_every
        for step_in_epoch in bar:
            self._step(batches)
            self.position = Position(epoch, step_in_epoch + 1, self.position.step + 1)
            seen = max(self.stats[2].item(), 1)
            images_per_s = (step_in_epoch + 1 - first_step) * self.config.batch_size / (time.perf_counter() - start)
            bar.set_postfix(
                loss=f"{self.stats[0] / seen:.3f}", acc=f"{self.stats[1] / seen:.1%}", img_s=f"{images_per_s:.0f}"
            )
            if every and self.position.step % every == 0 and step_in_epoch + 1 < self.steps_per_epoch:
                self._checkpoint(self.position)
        bar.close()
        self._check_weights()  # before anything is evaluated or written for the epoch
        totals = self.stats.clone()
        if self.world > 1:
            dist.all_reduce(totals)
        self.val = evaluate_dataset(
            self.final_model,
            self.data.val,
            batch_size=self.micro_batch * 2,
            workers=self.config.workers,
            device=self.device,
        )
        lr = self.schedule.get_last_lr()[0]
        self.log.epoch_end(epoch, lr, totals, self.val, images_per_s, float_model(self.final_model))
        self.position = Position(epoch + 1, 0, self.position.step)
        self._checkpoint(self.position)

    def _score_int8(self) -> EvalResult:
        """Write the int8 IR (rank 0), then score it on the validation images (each process its share)."""
        path = self.log.run_dir / INT8_IR
        if self.rank == 0:
            export_int8(self.final_model, path)
        if self.world > 1:
            dist.barrier()
        int8 = load_deployed(path)
        return evaluate_dataset(int8, self.data.val, batch_size=self.micro_batch, workers=self.config.workers)

    def run(self) -> TrainResult:
        start, self.val = time.perf_counter(), None
        for epoch in range(self.position.epoch, self.config.epochs):
            self._epoch(epoch)
        int8 = self._score_int8() if self.config.qat else None
        self.log.finish(self.final_model, int8)
        if self.world > 1:
            dist.barrier()
        return TrainResult(
            float_model(self.final_model),
            self.log.run_dir,
            self.config.epochs,
            self.position.step,
            self.val,
            self.log.best_top1,
            time.perf_counter() - start,
            self.log.mean_images_per_s(),
            self.log.skipped,
            int8,
        )


def train(config: TrainConfig, resume: str | Path | None = None, progress: bool = True) -> TrainResult:
    """Train as ``config`` says, or continue the run in ``resume`` exactly where it stopped."""
    return Trainer(config, resume, progress).run()
