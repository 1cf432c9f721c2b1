"""SinSEMI: one-shot image generation for semiconductor inspection."""

__version__ = "0.1.0"
