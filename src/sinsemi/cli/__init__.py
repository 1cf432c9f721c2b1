"""Thin Hydra entry points; the work happens in library modules."""
