"""PNG figures (matplotlib is an optional extra: ``pip install 'mobilenet[plot]'``)."""

from __future__ import annotations

from pathlib import Path

from mobilenet.complexity import Profile


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'mobilenet[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_profile(result: Profile, path: str | Path) -> None:
    """Bars of multiply-adds and parameters per layer."""
    plt = _pyplot()
    layers = [layer for layer in result.layers if layer.operator != "avgpool"]
    names = [layer.name.replace("features.", "") for layer in layers]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    top.bar(names, [layer.madds / 1e6 for layer in layers], color="tab:blue")
    top.set_ylabel("MAdds (M)")
    top.set_title(
        f"{result.model} width {result.width_mult:g} @ {result.resolution}: "
        f"{result.madds / 1e6:.1f}M MAdds, {result.params / 1e6:.2f}M parameters"
    )
    bottom.bar(names, [layer.params / 1e6 for layer in layers], color="tab:orange")
    bottom.set_ylabel("parameters (M)")
    bottom.set_xlabel("layer (features index)")
    bottom.tick_params(axis="x", rotation=90)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
