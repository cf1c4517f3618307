"""Running real dependencies on one machine: Triton from the nvidia-pytriton wheel."""
