"""The models a server holds: each weights file loaded through the registry (any kind it reads, any format), deployed
once per worker on the fastest backend, under the name its URL uses."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mobilenet import registry
from mobilenet.weights.published import is_weights_name

if TYPE_CHECKING:
    from mobilenet.inference.deploy import Deployed
    from mobilenet.kinds import ModelKind
    from mobilenet.serve.batching import RunBatch

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # what a model's name in a URL may be


@dataclass(frozen=True)
class ModelSpec:
    """A model to serve: its name in URLs, its weights (a file or a published name), and its kind's own options."""

    name: str
    weights: str
    options: dict[str, Any] = field(default_factory=dict)


RUN_FILES = ("best", "last")  # a training run's weights, named after the run's folder instead


def parse_spec(text: str) -> ModelSpec:
    """``NAME=WEIGHTS`` or ``WEIGHTS``, named by the file's stem (a run's ``best.safetensors`` by its run folder) or
    the published name; checked."""
    name, sep, weights = text.partition("=")
    if not sep:
        path = Path(text.rstrip("/"))
        name = text if is_weights_name(text) else path.parent.name if path.stem in RUN_FILES else path.stem
        weights = text
    if not NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} cannot name a model in a URL: use letters, digits, '_', '.' and '-' (serve NAME={weights})"
        )
    return ModelSpec(name, weights)


def with_options(specs: list[ModelSpec], options: dict[str, Any]) -> list[ModelSpec]:
    """Each spec with those of ``options`` (the kinds' own predict options: ``top``, ``score``, ...) that its kind
    takes; an option that no served model's kind takes is refused in one line."""
    kinds = [registry.kind_of_weights(spec.weights) for spec in specs]
    taken = {option.name for kind in kinds for option in kind.options("predict")}
    for name in options:
        if name not in taken:
            takers = [kind.name for kind in registry.kinds() if name in {o.name for o in kind.options("predict")}]
            raise ValueError(
                f"--{name.replace('_', '-')} is an option of {' and '.join(takers) or 'no'} models, and none is served"
            )
    own = [{o.name: options[o.name] for o in kind.options("predict") if o.name in options} for kind in kinds]
    return [ModelSpec(spec.name, spec.weights, given) for spec, given in zip(specs, own, strict=True)]


@dataclass
class ServedModel:
    """One served model: its spec, kind and a deployed runner per worker."""

    spec: ModelSpec
    kind: ModelKind
    runners: list[Deployed]

    @property
    def name(self) -> str:
        return self.spec.name

    def run_batch(self, runner: Deployed) -> RunBatch:
        """What one worker runs: decoded images -> the kind's results, as one batch."""
        return lambda images: self.kind.call("serve", runner, images, **self.spec.options)

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/models`` says of it: kind, weights, backend, classes, preprocessing, options."""
        runner = self.runners[0]
        return {
            "name": self.name,
            "kind": self.kind.name,
            "gives": self.kind.description,
            "weights": Path(self.spec.weights).name,
            "backend": runner.backend,
            "precision": runner.precision,
            "workers": len(self.runners),
            "input_size": runner.preprocessing.input_size,
            "preprocessing": asdict(runner.preprocessing),
            "class_names": runner.class_names,
            "options": self.spec.options,
        }


def load_served(
    spec: ModelSpec,
    backend: str = "auto",
    precision: str | None = None,
    calibration: str | None = None,
    workers: int = 1,
    emulate_int8: bool | None = None,
) -> ServedModel:
    """Load and deploy ``spec`` once per worker (as :func:`~mobilenet.registry.load_deployed` does); the threads of
    the machine's cores are shared among the workers."""
    kind = registry.kind_of_weights(spec.weights)
    if kind.serve is None:
        raise ValueError(f"{spec.weights} holds a {kind.name} model, which its kind does not serve")
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    threads = max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None
    runners = [
        registry.load_deployed(spec.weights, backend, precision, calibration, threads, emulate_int8=emulate_int8)
        for _ in range(workers)
    ]
    return ServedModel(spec, kind, runners)
