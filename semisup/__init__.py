"""semisup: semi-supervised learning for video understanding.

A shared timm encoder looks at frames sampled from each trailer. Unlabeled
trailers teach it through self-supervised pretext tasks (SESEMI by default);
a few labeled trailers teach task heads (multi-label genres, shot types) with
Asymmetric Loss. Recipes are TOML files run by ``semisup run RECIPE``.
"""

__version__ = "0.1.0"
