"""``mobilenet pick``: the most accurate MobileNetV2 within a latency budget, timed on this machine."""

from __future__ import annotations

import argparse
import json

from mobilenet.cli.output import add_plot, check_plot

HELP = "the most accurate MobileNetV2 within a latency budget on this machine"
DESCRIPTION = (
    "Time every published MobileNetV2 width and resolution on this machine and pick the most accurate (TF-slim's "
    "published ImageNet top-1) whose batch-1 latency fits the budget: the paper's Figure 5, here."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mobilenet.inference.backends import BACKENDS
    from mobilenet.utils.values import positive_float, positive_int

    parser.add_argument("--budget-ms", type=positive_float, required=True, help="batch-1 latency budget (ms)")
    parser.add_argument("--threads", type=positive_int, default=2, help="threads for every model")
    parser.add_argument("--widths", type=positive_float, nargs="+", metavar="ALPHA",
                        help="widths to time (default: every published one)")  # fmt: skip
    parser.add_argument("--resolutions", type=positive_int, nargs="+", metavar="PIXELS",
                        help="resolutions to time (default: every published one)")  # fmt: skip
    parser.add_argument("--backend", default="auto", choices=["auto", *BACKENDS],
                        help="what runs each model (default: auto, the fastest installed)")  # fmt: skip
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "int8"], help="every model's precision")
    parser.add_argument("--rounds", type=positive_int, default=3, help="interleaved rounds")
    parser.add_argument("--calls", type=positive_int, default=20, help="batch-1 calls per cell per round")
    parser.add_argument("--json", action="store_true", help="print every cell and the pick as JSON")
    add_plot(parser, "write accuracy against latency as a PNG (the paper's Figure 5)")


def _given(args: argparse.Namespace, *names: str) -> dict:
    """The named flags as keyword arguments of the library function they are passed to."""
    return {name: getattr(args, name) for name in names}


def run(args: argparse.Namespace) -> int:
    from mobilenet.tools.pick import pick

    check_plot(args)
    options = _given(args, "threads", "widths", "resolutions", "backend", "precision", "rounds", "calls")
    result = pick(args.budget_ms, progress=not args.json, **options)
    if args.plot:
        from mobilenet.tools.plots import plot_pick

        plot_pick(result, args.plot)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0 if result.choice else 1
    print(f"MobileNetV2 batch-1 latency here ({result.backend} {result.precision}, {result.threads} threads) "
          "and published ImageNet top-1 (TF-slim):")  # fmt: skip
    for c in sorted(result.cells, key=lambda c: c.latency_ms):
        mark = "  <- pick" if c is result.choice else ""
        fits = "fits" if result.budget_ms is not None and c.latency_ms <= result.budget_ms else "over"
        print(f"  width {c.width_mult:<4g} @{c.resolution:<4} {c.latency_ms:7.2f} ms (p90 {c.latency_p90_ms:.2f}) "
              f"{fits}  top-1 {c.top1:.1f}%  {c.madds_m:g}M MAdds{mark}")  # fmt: skip
    if args.plot:
        print(f"plot written to {args.plot}")
    if result.out_of_order:
        print(f"timed out of order (slower than cells of 1.5x their MAdds or more, so disturbed): "
              f"{', '.join(result.out_of_order)}; time again on a quiet machine, or with more --rounds")  # fmt: skip
    if result.choice is None:
        fastest = min(result.cells, key=lambda c: c.latency_ms)
        print(f"nothing fits in {args.budget_ms:g} ms: the fastest is width {fastest.width_mult:g} "
              f"@{fastest.resolution} at {fastest.latency_ms:.2f} ms; raise the budget or add threads")  # fmt: skip
        return 1
    c = result.choice
    print(f"pick: mobilenet_v2 width {c.width_mult:g} @{c.resolution}: {c.top1:.1f}% top-1 in {c.latency_ms:.2f} ms "
          f"(create_model('mobilenet_v2_{round(c.width_mult * 100):03d}', input_size={c.resolution}))")  # fmt: skip
    return 0
