"""mdxnet: a reproducible KUIELAB-MDX-Net (TFC-TDF-U-Net v2 + Mixer) source separation pipeline."""

__version__ = "0.1.0"
