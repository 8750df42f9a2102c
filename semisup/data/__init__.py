"""Data: samples and tasks, the dataset layouts (folder, demo, MovieNet, MovieShots),
frame picking and decoding (images and video), loaders, splits, extraction, inspection.

Nothing here reads recipes; every function takes explicit arguments.
"""
