"""Thin Hydra entry points: parse, call a job (:mod:`sinsemi.jobs`), report; one error path (:mod:`sinsemi.cli._common`)."""
