"""Trainers: one per model, on a shared solver (DDP, checkpoints, MLflow, progress)."""
