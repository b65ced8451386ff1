"""What a kind of model declares to the registry: a task package's one registration.

A kind is a task package (image classification, Mobile DeepLabv3 segmentation, SSD detection, or a plugin's own):
its name, the files it reads, its registered models and published weights, its training settings and recipes, its
command-line options, and references (``"module:attribute"``) to the functions that build, load, run, score and
train it. The references are imported only when called, so the declaration is torch-free: listing models and
parsing a command line never load PyTorch.

A new kind is a package of its own plus one :class:`ModelKind`, registered with :func:`mobilenet.registry.register`
or through the ``mobilenet.kinds`` entry-point group of its distribution (which the command line reads too).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mobilenet.training.config import TrainConfig
    from mobilenet.weights.published import PublishedWeights

Ref = str  # "package.module:attribute", imported on first use


@cache
def resolve(ref: Ref) -> Any:
    """The object a reference names, imported on first use."""
    module, _, attribute = ref.partition(":")
    if not attribute:
        raise ValueError(f"{ref!r} is no reference: expected 'package.module:attribute'")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Option:
    """A command-line option of one kind's: ``--name`` (underscores as dashes), given to its function as ``name``.

    ``type`` parses the text (None with ``flag``: a switch, True when given); an option the chosen kind does not
    declare is refused in one line that names the kinds that take it.
    """

    name: str
    help: str
    type: Callable[[str], Any] | None = str
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    flag: bool = False

    @property
    def flag_name(self) -> str:
        return f"--{self.name.replace('_', '-')}"


class Report(Protocol):
    """What a kind's ``evaluate`` returns: the scores (fractions in [0, 1]) and what people and tools read of them."""

    n: int  # samples scored
    skipped: int  # samples that could not be read

    @property
    def metrics(self) -> dict[str, float]: ...

    def to_json(self) -> str:
        """Every figure, as one JSON object."""

    def report(self, source: str) -> str:
        """The figures for people, as lines of text, on ``source`` (the data's name)."""

    def plot(self, path: str | Path, title: str) -> None:
        """The figures as a PNG."""


@dataclass(frozen=True)
class ModelKind:
    """One kind of model, as its task package declares it (see the module's docstring).

    The references take, and return:

    - ``task``: the :class:`~mobilenet.training.task.Task` class that the trainer learns it with.
    - ``create``: ``(name, weights=None, progress=True, **overrides) -> model``: a registered model, new or with
      weights (a file, or the name of published weights), ``overrides`` applied to its config.
    - ``load``: ``(path, **overrides) -> model``: a weights file of this kind; ``load_deployed`` adds
      ``emulate_int8=True`` for a quantized TFLite file of it (its activations rounded as Google's runtime does).
    - ``claims``: ``(path) -> bool``: whether a file that is not one of our safetensors holds this kind (a TFLite
      file, a frozen graph); None: the kind reads only our files. The ``fallback`` kind's claim is asked last, and
      it also reads every file that no kind claims.
    - ``predict``: ``(model, images, **predict options) -> list[dict]``: one JSON-able result per image file, in
      order; an unreadable image's is ``{"image", "error"}``. ``model`` is a module or what ``deploy`` made of one.
    - ``serve``: ``(model, images, **predict options) -> list[dict]``: decoded RGB images (PIL) run as one batch, a
      result each as ``predict`` gives it for a file (without ``"image"``) with what a page draws besides (a
      segmenter's mask, as a PNG data URL): what ``mobilenet serve`` answers; None: the kind is not served.
    - ``describe``: ``(result) -> str``: one ``predict`` result for people.
    - ``evaluate``: ``(load, data, batch_size, workers, progress, **eval options) -> Report``: the scores of a model
      on the labelled data at ``data``; ``load(images)`` gives the model, told how many images it will run on.
    - ``shard``: ``(source, out, shard_size, progress) -> record with summary()``: its labelled data at ``source``
      written as tar shards in the new folder ``out``, which its ``evaluate`` and task read in its place; None: its
      data is not sharded.
    - ``tables``: flag name -> ``(quick) -> PaperTable``: the paper's tables this kind recomputes.
    - ``verify``: ``(path, images, **overrides) -> Verification`` (:mod:`mobilenet.weights.verify`): what a file of
      this kind is, and how our model agrees with the framework that wrote it; None: not verified.
    """

    name: str  # what it learns and is called by: ``--task``, the run's summary, the help's groups
    description: str  # one line for people: what it gives of an image
    evaluates: str  # one line for people: what ``evaluate`` scores, and on what data
    file_kind: str  # what our weights files of it say they hold (their ``mobilenet.kind``)
    command: str  # the command that runs it on images
    config: type  # the frozen record of a model's settings, saved with its weights
    models: Mapping[str, Any]  # registered model name -> its config
    default_model: str
    settings: type  # the frozen record of its own training settings (TrainConfig holds the common ones)
    recipes: Mapping[str, TrainConfig]  # named training recipes, their ``task`` this kind's name
    default_recipe: str
    task: Ref
    create: Ref
    load: Ref
    predict: Ref
    describe: Ref
    evaluate: Ref
    claims: Ref | None = None
    verify: Ref | None = None
    serve: Ref | None = None
    shard: Ref | None = None
    fallback: bool = False  # reads every file that no other kind claims (the MobileNet classifier)
    predict_options: tuple[Option, ...] = ()
    # Files ``predict`` writes per image given ``out`` (a folder), ``{name}`` standing for the image's name (see
    # ``mobilenet.utils.outputs``); a kind that writes takes ``out`` and ``overwrite``.
    writes: tuple[str, ...] = ()
    eval_options: tuple[Option, ...] = ()
    published: tuple[PublishedWeights, ...] = ()  # weights known by name
    tables: Mapping[str, Ref] = field(default_factory=dict)
    demo_recipe: TrainConfig | None = None  # what ``mobilenet train`` runs without --data, if this kind has one

    def __post_init__(self) -> None:
        if self.default_model not in self.models:
            raise ValueError(f"kind {self.name!r}: its default model {self.default_model!r} is not one of its models")
        if self.default_recipe not in self.recipes:
            raise ValueError(f"kind {self.name!r}: its default recipe {self.default_recipe!r} is none of its recipes")
        wrong = [name for name, recipe in self.recipes.items() if recipe.task != self.name or recipe.recipe != name]
        if wrong:
            raise ValueError(f"kind {self.name!r}: its recipe {wrong[0]!r} must be named so, of task {self.name!r}")

    def call(self, reference: str, *args: Any, **kwargs: Any) -> Any:
        """Call the function of one of the references (``"load"``, ``"predict"``, ...)."""
        ref = getattr(self, reference)
        if ref is None:
            raise ValueError(f"the {self.name} kind declares no {reference}")
        return resolve(ref)(*args, **kwargs)

    def options(self, command: str) -> tuple[Option, ...]:
        """The options of its own that ``command`` ("predict" or "eval") takes."""
        return self.predict_options if command == "predict" else self.eval_options
