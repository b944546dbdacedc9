"""Datasets: MUSDB18-HQ layout listing/loading, download, validation, the generated dataset, the augmentation
cache and the training sampler."""
