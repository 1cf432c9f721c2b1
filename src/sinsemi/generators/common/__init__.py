"""Pieces shared by several generators: :mod:`.patches` (patch ops and their working scale; GPNN,
GPDM), :mod:`.gan` (SinGAN, ConSinGAN), :mod:`.diffusion` (the diffusion baselines)."""
