"""Tools on top of the library: benchmarks against the references (bench), a model for a budget (pick), plots."""
