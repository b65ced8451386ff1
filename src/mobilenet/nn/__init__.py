"""The network, in pure PyTorch: layers, blocks, the papers' tables, the builder and its feature taps.

Nothing here imports the rest of the package. The submodules are imported where used, so that reading
a config or a model name (``config``, ``variants``, ``tables``) does not import PyTorch.
"""
