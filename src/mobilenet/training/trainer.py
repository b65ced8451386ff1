"""The training loop, for any task: one process, or many through torchrun and DistributedDataParallel.

``torchrun --nproc_per_node=N -m mobilenet train ...`` sets the environment that PyTorch's own
process group reads; each process trains on its shard of every global batch, gradients are averaged
by DDP, metrics are summed across processes, and only rank 0 writes files. What is learned comes from
a :class:`~mobilenet.training.task.Task`: its data, its loss and its metrics.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from mobilenet.training.checkpoint import POINTER, Position, load_checkpoint, save_checkpoint
from mobilenet.training.config import TrainConfig, check_resumable, read_options, resume_config
from mobilenet.training.hooks import Extra, Hook, hooks_for
from mobilenet.training.loading import training_batches
from mobilenet.training.norms import describe_norms, frozen_norms
from mobilenet.training.optim import build_optimizer, build_schedule, ema_update
from mobilenet.training.runlog import SUMMARY, RunLog
from mobilenet.training.sampling import ShardedSampler
from mobilenet.training.saturation import TRAINING_EVERY, ConstantChannels, stopped_layers
from mobilenet.training.task import Evaluation, Task
from mobilenet.utils.machine import bf16_supported

# Steps between reads of the running metrics (and of the divergence flag) back from the device: each read
# waits for the device to finish, which on a GPU costs more than the step itself.
SYNC_EVERY = 10


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


@dataclass(frozen=True)
class TrainResult:
    model: nn.Module  # the trained weights (the EMA when it is on), on this process, as the hooks ship them
    run_dir: Path
    epochs: int
    steps: int
    val: Any  # the task's last evaluation (an Evaluation), None if no epoch ran
    best: float  # the best validation score of ``best_metric``
    best_metric: str
    wall_seconds: float
    train_images_per_s: float
    skipped_images: dict[str, int]
    extras: dict[str, Extra] = field(default_factory=dict)  # the hooks' own results, by name


def join_processes(config: TrainConfig) -> tuple[int, int, torch.device]:
    """Join torchrun's process group when launched by it; pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {config.device}: this PyTorch has no CUDA device here; use --device cpu")
    cuda = config.device in ("auto", "cuda") and torch.cuda.is_available()
    if world > 1 and not dist.is_initialized():
        # NCCL reduces CUDA tensors only; metrics summed on the CPU (evaluation) go through gloo.
        dist.init_process_group("cuda:nccl,cpu:gloo" if cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        torch.backends.cudnn.benchmark = True  # fixed shapes: cuDNN's autotuner picks the fastest kernels
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu" if config.device == "auto" else config.device)


def to_device(value: Any, device: torch.device) -> Any:
    """Tensors (also inside lists, tuples and dicts) copied to ``device`` without waiting for the copy."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, list | tuple):
        return type(value)(to_device(item, device) for item in value)
    if isinstance(value, dict):
        return {key: to_device(item, device) for key, item in value.items()}
    return value


def checked_resume_config(run_dir: Path, config: TrainConfig | None) -> TrainConfig:
    """The config of the run in ``run_dir``; a given ``config`` may differ from it only where a resume may."""
    saved = resume_config(run_dir)
    if config is None:
        return saved
    changes = {
        name: value
        for name, value in vars(config).items()
        if name not in ("out", "task", "options") and value != getattr(saved, name)
    }
    if config.options and config.options != saved.options:
        changes["options"] = config.options
    check_resumable(changes)
    return replace(saved, **changes)


class Trainer:
    """One run of ``task``, built from a config, then :meth:`run`.

    With ``resume`` (a run directory) the run continues exactly where its last checkpoint left it, with
    its own config: ``config`` is None, or that config with only the changes a resumed run may make
    (:func:`~mobilenet.training.config.resume_config`). ``hooks`` are the capabilities plugged into the loop
    (None: those the config turns on, see :func:`~mobilenet.training.hooks.hooks_for`).
    """

    def __init__(
        self,
        config: TrainConfig | None,
        task: Task,
        resume: str | Path | None = None,
        progress: bool = True,
        model: nn.Module | None = None,
        hooks: list[Hook] | None = None,
    ) -> None:
        resume = Path(resume) if resume is not None else None
        if resume is not None:
            config = checked_resume_config(resume, config)
        # What config.json records is what was trained: the task, and every one of its settings.
        settings = read_options(task.settings, config.options, task.name, lenient=resume is not None)
        config = replace(config, task=task.name, options=asdict(settings))
        self.config, self.task, self.progress = config, task, progress
        self.hooks = hooks_for(config) if hooks is None else hooks
        self.rank, self.world, self.device = join_processes(config)
        if config.batch_size % (self.world * config.accum_steps):
            raise ValueError(
                f"batch_size {config.batch_size} must be a multiple of processes x accum_steps "
                f"({self.world} x {config.accum_steps})"
            )
        for hook in self.hooks:  # before anything is read or written
            hook.check(config, task, resume is not None)
        # The thread count changes how float sums are split, so the bits: set, and recorded, for every run.
        config = self.config = replace(config, threads=config.threads or torch.get_num_threads())
        torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)  # the same initial weights in every process
        self.model, self.data = task.prepare(config, model)
        self.micro_batch = config.batch_size // (self.world * config.accum_steps)
        self.steps_per_epoch = len(self.data.train) // config.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"{len(self.data.train)} training samples make no batch of {config.batch_size}: lower --batch-size"
            )
        if config.sync_bn and self.world > 1 and self.device.type != "cuda":
            raise ValueError("sync_bn needs CUDA: PyTorch's SyncBatchNorm does not run on the CPU")
        self.log = RunLog(config, self.data, task.best_metric, enabled=self.rank == 0, resume=resume)
        try:
            self.build(resume)
        except BaseException:
            self.log.discard_if_empty()
            raise

    def build(self, resume: Path | None) -> None:
        """The model on its device, optimizer, schedule, EMA and scaler; restored from ``resume`` if given."""
        config = self.config
        for hook in self.hooks:
            run_dir = self.log.run_dir if self.rank == 0 else None
            self.model = hook.prepare(self.model, self.task, self.data, run_dir, resume)
        if config.sync_bn and self.world > 1:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        # Chosen on the model as built, before a checkpoint loads: a resumed run freezes the same norms.
        self.frozen_norms = frozen_norms(self.model, config.freeze_bn, self.micro_batch)
        self.norms = describe_norms(self.model, self.frozen_norms)
        self.memory_format = torch.channels_last if config.channels_last else torch.preserve_format
        self.model.to(self.device, memory_format=self.memory_format)
        self.optimizer = build_optimizer(config, self.model, self.no_weight_decay)
        self.schedule = build_schedule(config, self.optimizer, self.steps_per_epoch)
        self.ema = None
        if config.ema_decay:
            self.ema = AveragedModel(self.model, multi_avg_fn=ema_update(config.ema_decay), use_buffers=True)
        fp16 = config.amp and self.device.type == "cuda" and config.amp_dtype == "float16"
        self.scaler = torch.amp.GradScaler(self.device.type) if fp16 else None
        self.autocast_dtype = torch.float16 if fp16 else torch.bfloat16
        if config.amp and self.device.type == "cpu" and not bf16_supported() and self.rank == 0:
            # SSDLite on BCCD, AMD EPYC with AVX2: 22 s a step in bf16 against 4.4 s in float32.
            warnings.warn(
                "--amp true on a CPU without native bf16 (AVX512-BF16 or AMX): bfloat16 is emulated here, several "
                "times slower than float32; --amp false trains in float32",
                stacklevel=2,
            )
        self.position = Position(0, 0, 0)
        # This epoch's sums, kept on the device: the task's train_stats, then unreadable samples skipped.
        self.stats = torch.zeros(len(self.task.train_stats) + 1, dtype=torch.float64, device=self.device)
        self.nonfinite = torch.zeros((), device=self.device)  # losses that were NaN or infinite since the last read
        if resume is not None and (resume / POINTER).exists():
            self.restore(resume)
            self.log.resumed()
        else:  # a new run, or one killed before its first checkpoint: it starts over
            torch.manual_seed(config.seed + 1 + self.rank)  # dropout differs between processes
            if resume is not None:
                self.log.resumed()
        net = nn.parallel.DistributedDataParallel(self.model) if self.world > 1 else self.model
        self.net = torch.compile(net) if config.compile else net
        self.val: Evaluation | None = None
        if self.rank == 0 and self.progress:
            verb = f"resuming at epoch {self.position.epoch + 1}, step {self.position.step}" if resume else "training"
            lr, backbone_lr = config.scaled_lr(), config.backbone_lr()
            backbone = f" (the backbone's {backbone_lr:g})" if backbone_lr != lr else ""
            print(
                f"{self.log.run_dir}: {verb}: {config.task}, {config.model or 'the model of --weights'}, "
                f"{config.epochs} epochs of {self.steps_per_epoch} steps, batch {config.batch_size}, "
                f"lr {lr:g}{backbone}, BatchNorm statistics {self.norms['kept']} kept and "
                f"{self.norms['learned']} learned{self.data.describe_class_rows()} ({config.recipe} recipe; all of "
                "it in config.json)",
                file=sys.stderr,
            )

    def no_weight_decay(self, name: str) -> bool:
        """Whether a parameter belongs to a hook rather than to the network (no weight decay)."""
        return any(hook.no_weight_decay(name) for hook in self.hooks)

    @property
    def final_model(self) -> nn.Module:
        """The weights to evaluate: the EMA when it is on."""
        return self.ema.module if self.ema is not None else self.model

    def plain(self, model: nn.Module) -> nn.Module:
        """``model`` as it is saved and shipped: without what the hooks added for training."""
        for hook in self.hooks:
            model = hook.plain(model)
        return model

    def restore(self, run_dir: Path) -> None:
        state, self.position = load_checkpoint(run_dir, self.model)
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        if self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.stats = state["epoch_stats"].to(self.device)
        self.log.restore(state["log"])
        generators = state["rng"]  # every process's, so that dropout goes on as if never interrupted
        if len(generators) != self.world:
            raise ValueError(
                f"{run_dir} was trained by {len(generators)} processes: resume it with as many "
                f"(torchrun --nproc_per_node={len(generators)})"
            )
        torch.set_rng_state(generators[self.rank]["cpu"])
        if "cuda" in generators[self.rank] and self.device.type == "cuda":
            torch.cuda.set_rng_state(generators[self.rank]["cuda"], self.device)
        # A run killed after its last checkpoint, while it wrote its summary, resumes to write it; a finished one
        # is refused.
        if self.position.epoch >= self.config.epochs and (run_dir / SUMMARY).exists():
            raise ValueError(
                f"{run_dir} has finished its {self.position.epoch} epochs: extend it with --resume {run_dir} "
                f"--epochs N (N > {self.position.epoch}), or start a new run"
            )

    def diverged(self, what: str) -> TrainingDiverged:
        kept = "no checkpoint was written"
        if (self.log.run_dir / POINTER).exists():
            kept = f"the last checkpoint in {self.log.run_dir} is intact"
        return TrainingDiverged(
            f"{what} by step {self.position.step}: training stopped and {kept} (lower --lr, or try --amp false)"
        )

    def check_weights(self) -> None:
        # A finite loss can still come with an update that overflowed: never save such weights.
        tensors = self.model.state_dict().values()  # parameters and BatchNorm statistics
        if not all(torch.isfinite(t).all() for t in tensors if t.is_floating_point()):
            raise self.diverged("the weights became infinite or NaN")

    def sync(self) -> dict[str, float]:
        """Read the running sums back from the device; stop every process together if a loss was not finite."""
        nonfinite = self.nonfinite.clone()
        if self.world > 1:
            dist.all_reduce(nonfinite)
        if nonfinite.item():
            raise self.diverged("the loss became NaN or infinite")
        values = self.stats.tolist()
        return dict(zip(self.task.train_stats, values, strict=False))

    def checkpoint(self, position: Position) -> None:
        self.sync()
        self.check_weights()
        generator = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            generator["cuda"] = torch.cuda.get_rng_state(self.device)
        generators = [generator]
        if self.world > 1:  # rank 0 writes every process's generators
            generators = [{} for _ in range(self.world)]
            dist.all_gather_object(generators, generator)
        if self.rank == 0:
            state = {
                "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(),
                "epoch_stats": self.stats.cpu(),
                "rng": generators,
                "log": self.log.state(),
            }
            if self.ema is not None:
                state["ema"] = self.ema.state_dict()
            if self.scaler is not None:
                state["scaler"] = self.scaler.state_dict()
            try:
                save_checkpoint(self.log.run_dir, self.model, state, position)
            except OSError as error:
                raise OSError(
                    f"could not write the checkpoint of step {position.step} in {self.log.run_dir} "
                    f"({error.strerror or error}): the previous one is intact; free space, then --resume it"
                ) from None
        if self.world > 1:
            dist.barrier()

    def loader(self, epoch: int, first_step: int) -> Iterator[tuple]:
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
        return training_batches(
            self.data.train,
            sampler,
            self.micro_batch,
            self.task.collate,
            self.config.workers,
            self.config.loader,
            self.device,
            torch.Generator().manual_seed(epoch),
        )

    def micro_step(self, inputs: torch.Tensor, targets: Any, seed: int, sync: bool) -> None:
        """Forward and backward of one micro-batch; gradients sync across processes only if ``sync``."""
        inputs = inputs.to(self.device, memory_format=self.memory_format, non_blocking=True)
        targets = to_device(targets, self.device)
        generator = torch.Generator().manual_seed(seed)
        with (
            contextlib.nullcontext() if sync or self.world == 1 else self.net.no_sync(),
            torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.config.amp),
        ):
            loss, stats = self.task.loss(self.net, inputs, targets, self.config, generator)
        self.nonfinite += ~torch.isfinite(loss.detach())
        (self.scaler.scale(loss) if self.scaler else loss).div(self.config.accum_steps).backward()
        self.stats[:-1] += stats

    def step(self, batches: Iterator) -> None:
        """One optimizer step over ``accum_steps`` micro-batches."""
        accum = self.config.accum_steps
        for micro in range(accum):
            inputs, targets, skipped = next(batches)
            self.stats[-1] += skipped
            if len(inputs):
                seed = (self.config.seed * 1_000_003 + self.position.step) * 131 + micro * 17 + self.rank
                self.micro_step(inputs, targets, seed, sync=micro == accum - 1)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def epoch(self, epoch: int) -> None:
        first_step = self.position.step_in_epoch
        if first_step == 0:
            self.stats.zero_()
        batches = self.loader(epoch, first_step)
        self.net.train()
        for norm in self.frozen_norms:
            norm.eval()
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
            self.step(batches)
            self.position = Position(epoch, step_in_epoch + 1, self.position.step + 1)
            done = step_in_epoch + 1 - first_step
            if done % SYNC_EVERY == 0 or step_in_epoch + 1 == self.steps_per_epoch:
                images_per_s = done * self.config.batch_size / (time.perf_counter() - start)
                shown = self.task.summarize(self.sync())
                bar.set_postfix({**{k: f"{v:.3g}" for k, v in shown.items()}, "img_s": f"{images_per_s:.3g}"})
            if every and self.position.step % every == 0 and step_in_epoch + 1 < self.steps_per_epoch:
                self.checkpoint(self.position)
        bar.close()
        totals = self.sync()
        self.check_weights()  # before anything is evaluated or written for the epoch
        skipped = float(self.stats[-1])
        if self.world > 1:
            summed = torch.tensor([*totals.values(), skipped], dtype=torch.float64, device=self.device)
            dist.all_reduce(summed)
            totals, skipped = dict(zip(totals, summed.tolist()[:-1], strict=True)), summed[-1].item()
        with ConstantChannels(self.final_model, every=TRAINING_EVERY) as constant:
            self.val = self.validate()
        stopped = stopped_layers(constant.counts(self.device))
        lr = max(self.schedule.get_last_lr())  # the head's, where a pretrained backbone takes a fraction of it
        train = self.task.summarize(totals)
        model = self.plain(self.final_model)
        self.log.epoch_end(epoch, lr, train, int(skipped), self.val, images_per_s, model, stopped)
        self.position = Position(epoch + 1, 0, self.position.step)
        self.checkpoint(self.position)

    def validate(self) -> Evaluation:
        """The task's scores of the weights to evaluate, on the validation set."""
        return self.task.evaluate(self.final_model, self.data.val, self.micro_batch * 2, self.config.workers,
                                  self.device)  # fmt: skip

    def run(self) -> TrainResult:
        start = time.perf_counter()
        try:
            for epoch in range(self.position.epoch, self.config.epochs):
                self.epoch(epoch)
        except BaseException:
            self.log.discard_if_empty()
            raise
        if self.val is None:  # resumed after its last epoch: the scores its summary and result report
            self.val = self.validate()
        extras: dict[str, Extra] = {}
        for hook in self.hooks:
            extras |= hook.finish(self.final_model, self.task, self.data, self.log.run_dir, self.rank,
                                  self.micro_batch, self.config.workers)  # fmt: skip
        self.log.finish(self.plain(self.final_model), self.norms, extras)
        if self.world > 1:
            dist.barrier()
        return TrainResult(
            self.plain(self.final_model),
            self.log.run_dir,
            self.config.epochs,
            self.position.step,
            self.val,
            self.log.best,
            self.task.best_metric,
            time.perf_counter() - start,
            self.log.mean_images_per_s(),
            self.log.skipped,
            extras,
        )
