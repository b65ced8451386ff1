"""Parameters and multiply-adds as the papers count them, beside the published tables."""

from mobilenet.complexity.profile import Profile, paper_table, profile, profile_model, published_grid

__all__ = ["Profile", "paper_table", "profile", "profile_model", "published_grid"]
