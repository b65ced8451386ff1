"""A run directory's resumable checkpoints, written so that a kill at any moment loses nothing.

Each checkpoint is a pair of files named by its optimizer step: the weights as safetensors (with the
model's metadata) and the rest of the training state (optimizer, scheduler, EMA, grad scaler, RNG,
position in the data, running metrics) as a tensors-only PyTorch file. ``last.json`` names the newest
complete pair and is replaced atomically after both files are on disk, so a resume never trusts a
half-written checkpoint; older pairs are deleted only after that.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenet.utils.files import atomic_write
from mobilenet.weights.format import read_safetensors, save_weights
from mobilenet.weights.load import load_state_dict

POINTER = "last.json"


@dataclass(frozen=True)
class Position:
    """Where training stands: ``step`` optimizer steps done, ``step_in_epoch`` of them in ``epoch``."""

    epoch: int
    step_in_epoch: int
    step: int


def save_checkpoint(run_dir: Path, model: nn.Module, state: dict[str, Any], position: Position) -> None:
    """Write the weights and state of ``position``, then point ``last.json`` at them."""
    folder = run_dir / "checkpoints"
    name = f"step-{position.step:08d}"
    save_weights(model, folder / f"{name}.safetensors")
    atomic_write(folder / f"{name}.state.pt", lambda tmp: torch.save(state, tmp))
    pointer = {"weights": f"checkpoints/{name}.safetensors", "state": f"checkpoints/{name}.state.pt"}
    pointer |= {"epoch": position.epoch, "step_in_epoch": position.step_in_epoch, "step": position.step}
    atomic_write(run_dir / POINTER, lambda tmp: Path(tmp).write_text(json.dumps(pointer, indent=2)))
    for old in folder.glob("step-*"):
        if not old.name.startswith(name):
            old.unlink(missing_ok=True)


def load_checkpoint(run_dir: Path, model: nn.Module) -> tuple[dict[str, Any], Position]:
    """Load the newest complete checkpoint's weights into ``model``; return its state and position."""
    pointer_path = run_dir / POINTER
    if not pointer_path.is_file():
        raise FileNotFoundError(f"{run_dir} has no checkpoint to resume ({POINTER} is missing)")
    try:
        pointer = json.loads(pointer_path.read_text())
        weights, state_path = run_dir / pointer["weights"], run_dir / pointer["state"]
        numbers = [pointer["epoch"], pointer["step_in_epoch"], pointer["step"]]
        if not all(type(number) is int and number >= 0 for number in numbers):
            raise TypeError(f"{POINTER} holds {numbers} where it should hold counts of epochs and steps")
        position = Position(*numbers)
        load_state_dict(model, read_safetensors(weights).state_dict, source=pointer["weights"])
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{run_dir}'s checkpoint is incomplete ({error.filename} is missing)") from None
    except (json.JSONDecodeError, KeyError, TypeError, RuntimeError, pickle.UnpicklingError, EOFError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{run_dir}'s checkpoint is damaged ({reason}): it cannot be resumed") from None
    return state, position


def remove_debris(run_dir: Path) -> None:
    """Temporary files of writes that a kill interrupted, and checkpoint files that ``POINTER`` does not name.

    Called only once the checkpoint that ``POINTER`` names has loaded: a damaged pointer removes nothing.
    """
    for tmp in [*run_dir.glob(".*.tmp"), *run_dir.glob("checkpoints/.*.tmp")]:
        tmp.unlink(missing_ok=True)
    pointer = run_dir / POINTER
    if pointer.exists():
        named = {Path(value).name for value in json.loads(pointer.read_text()).values() if isinstance(value, str)}
        for stale in (run_dir / "checkpoints").glob("step-*"):
            if stale.name not in named:
                stale.unlink(missing_ok=True)
