"""Training: recipe -> components (setup), the loop, checkpoints, logs, progress, whole runs."""
