"""The registered kinds of model on the command line: which kind a ``--weights`` is, the options of each kind's own
(added to a command, grouped by the kinds that take them, and read back for the kind that runs), and the shared
flags of the commands that run a model on images.

The registry answers which kind a file holds; this module words the answer in commands: a file of another kind
names the command that runs it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mobilenet.cli.output import print_per_image

if TYPE_CHECKING:
    from mobilenet.kinds import ModelKind, Option


def weights_kind(weights: str, wanted: ModelKind | None = None) -> ModelKind:
    """The kind of a weights file (or of the model that published weights load into); with ``wanted``, a file of
    another kind is refused in one line naming the command that runs it."""
    from mobilenet import registry

    if weights == "DEFAULT" and wanted is not None:
        return wanted
    found = registry.kind_of_weights(weights)
    if wanted is not None and found is not wanted:
        raise ValueError(f"{registry.wrong_kind(weights, found, wanted)}: run it with `mobilenet {found.command}`")
    return found


def add_kind_options(parser: argparse.ArgumentParser, command: str, kinds: list[ModelKind]) -> None:
    """The options of ``kinds``' own for ``command`` ("predict" or "eval"), each once, in a group per set of kinds
    that take it; their helps joined where kinds read an option differently."""
    declared: dict[str, list[tuple[ModelKind, Option]]] = {}
    for kind in kinds:
        for option in kind.options(command):
            declared.setdefault(option.name, []).append((kind, option))
    groups: dict[tuple[str, ...], Any] = {}  # argument groups
    for uses in declared.values():
        owners = tuple(kind.name for kind, _ in uses)
        if owners not in groups:
            groups[owners] = parser.add_argument_group(f"{' and '.join(owners)} options")
        option = uses[0][1]
        helps = {use.help for _, use in uses}
        text = option.help if len(helps) == 1 else "; ".join(f"{kind.name}: {use.help}" for kind, use in uses)
        settings: dict[str, Any] = {"action": "store_true"} if option.flag else {"type": option.type}
        if option.metavar and not option.flag:
            settings["metavar"] = option.metavar
        if option.choices:
            settings["choices"] = option.choices
        groups[owners].add_argument(option.flag_name, dest=option.name, help=text, **settings)


def kind_options(args: argparse.Namespace, kind: ModelKind, command: str, kinds: list[ModelKind]) -> dict[str, Any]:
    """The options of ``kind``'s own that were given, as its function takes them; one given for another kind only
    is refused in one line."""
    own = {option.name for option in kind.options(command)}
    given = {}
    for other in kinds:
        for option in other.options(command):
            value = getattr(args, option.name, None)
            if value is None or value is False:
                continue
            if option.name not in own:
                takers = [k.name for k in kinds if option.name in {o.name for o in k.options(command)}]
                raise ValueError(
                    f"{option.flag_name} is for {' and '.join(takers)} models: {args.weights} holds a {kind.name} one"
                )
            given[option.name] = value
    return given


def add_inference_flags(parser: argparse.ArgumentParser) -> None:
    """--backend, --precision, --calibration and --float: how the model runs (see ``mobilenet.load_deployed``)."""
    from mobilenet.inference.backends import BACKENDS, PRECISIONS

    parser.add_argument("--backend", default="auto", choices=["auto", *BACKENDS],
                        help="auto: the fastest installed; eager: the plain PyTorch model")  # fmt: skip
    parser.add_argument("--precision", choices=sorted({x for v in PRECISIONS.values() for x in v}),
                        help="default: fp32; an exported graph (.onnx, .xml, .pte) runs as it was saved")  # fmt: skip
    parser.add_argument("--calibration", help="int8: a folder of images (or one image) to calibrate on")
    parser.add_argument("--float", action="store_true",
                        help="an int8 TFLite file: run its weights in float, on any backend and precision "
                        "(default: as Google's runtime computes it, each activation rounded to the file's grid, "
                        "by PyTorch)")  # fmt: skip


def emulated(args: argparse.Namespace) -> bool | None:
    """``emulate_int8`` for ``load_deployed``: False with --float, else None (an int8 TFLite file as its runtime
    computes it, other files as they are)."""
    return False if args.float else None


def check_inference_flags(args: argparse.Namespace) -> None:
    """--precision and --calibration go together (a saved graph runs as it was saved, and says so itself)."""
    if args.precision == "int8" and args.calibration is None and Path(args.weights).suffix not in (".onnx", ".xml"):
        raise ValueError("--precision int8 calibrates on images: add --calibration DIR (a few hundred real images)")
    if args.calibration is not None and args.precision != "int8":
        raise ValueError("--calibration is for --precision int8 alone: leave it out, or add --precision int8")


def add_run_arguments(parser: argparse.ArgumentParser, kinds: list[ModelKind], weights_help: str) -> None:
    """The arguments of a command that runs a model on image files (``predict``, ``segment``, ``detect``)."""
    models = sorted(name for kind in kinds for name in kind.models)
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files to run the model on, folders of them, tar shards or Hugging Face "
                        "datasets")  # fmt: skip
    parser.add_argument("--weights", required=True, help=weights_help)
    parser.add_argument("--model", choices=models, metavar="NAME",
                        help="the model of a bare state dict or of published weights (default: the file's "
                        "own)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="one JSON object per image")
    add_inference_flags(parser)
    writers = [kind for kind in kinds if kind.writes]
    files = "; ".join(f"{kind.name}: {', '.join(kind.writes)}" for kind in writers)
    folder = (f"; or a folder, for each image's files ({files}; {{name}}: the image's name, with its folder's where "
              "names repeat)") if writers else ""  # fmt: skip
    parser.add_argument("--out", type=Path, metavar="PATH",
                        help="a results file, results.jsonl: each image's result as a JSON line, in order, written "
                        "as it goes (results.parquet: a Parquet file of them, written at the end); the same command "
                        "after a kill goes on where it stopped" + folder)  # fmt: skip
    parser.add_argument("--force", action="store_true",
                        help="start the results file again, or replace files of those names in the folder")  # fmt: skip
    add_kind_options(parser, "predict", kinds)


def run_on_images(args: argparse.Namespace, kinds: list[ModelKind]) -> int:
    """Run ``--weights`` (of one of ``kinds``) on the images and print a result per image."""
    from mobilenet import registry
    from mobilenet.data.images import image_files
    from mobilenet.inference.backends import backend_for
    from mobilenet.inference.bulk import SUFFIXES as RESULTS
    from mobilenet.inference.bulk import check_results_file, predict_to_file
    from mobilenet.inference.deploy import deploy
    from mobilenet.utils.outputs import check_folder, check_outputs, planned_outputs

    wanted = registry.kind_of_model(args.model) if args.model else None
    if wanted is None and len(kinds) == 1:
        wanted = kinds[0]
    check_inference_flags(args)
    kind = weights_kind(args.weights, wanted)
    options = kind_options(args, kind, "predict", kinds)
    images = image_files(args.images)
    out = args.out
    bulk = out is not None and out.suffix in RESULTS
    if bulk:  # checked before the model loads: nothing of the user's is overwritten unless asked
        check_results_file(out, images, args.force)
    elif out is not None:
        if not kind.writes:
            raise ValueError(f"--out DIR writes files of models that draw or mask: {args.weights} holds a {kind.name} "
                             f"model; --out results.jsonl (or .parquet) writes its results")  # fmt: skip
        check_folder(out)
        planned = planned_outputs(images, out, kind.writes)
        check_outputs((path for paths in planned for path in paths), images, args.force, allow="--force")
        options |= {"out": out, "overwrite": args.force}
    if args.model:
        precision = args.precision or "fp32"
        model = registry.create_model(args.model, weights=args.weights)
        runner = deploy(model, backend_for(len(images), args.backend, precision), precision, args.calibration)
    else:
        runner = registry.load_deployed(
            args.weights, args.backend, args.precision, args.calibration, None, len(images), emulated(args)
        )
    if bulk:
        done = predict_to_file(lambda files: kind.call("predict", runner, files, **options), images, out, args.force)
        print(done.summary())
        return 0
    results = kind.call("predict", runner, images, **options)
    return print_per_image(results, args.json, lambda result: kind.call("describe", result))


def own_command(task: str, weights_help: str) -> tuple[Callable[[argparse.ArgumentParser], None], Callable]:
    """The ``add_arguments`` and ``run`` of a command that is one kind's own: ``predict`` for that kind alone."""

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        from mobilenet.registry import kind

        add_run_arguments(parser, [kind(task)], weights_help)

    def run(args: argparse.Namespace) -> int:
        from mobilenet.registry import kind

        return run_on_images(args, [kind(task)])

    return add_arguments, run
