"""The application layer: the jobs behind the CLIs, called with plain objects (resolved config dicts,
paths) by the CLIs, the bench study and the tests.

- :mod:`~sinsemi.jobs.train` ``train_run``, :mod:`~sinsemi.jobs.sample` ``sample_run``,
  :mod:`~sinsemi.jobs.eval` ``eval_run`` / ``evaluate_into``, :mod:`~sinsemi.jobs.simulate` ``simulate_run``;
- their shared pieces, one idea a module: ``config`` (composing the configs), ``runtime``,
  ``images``, ``sampling``, ``signals``, ``sweep`` (multirun outcome records), ``slurm``, ``timer``.

Nothing here imports :mod:`sinsemi.cli`; the logger and what a job reports to it are in
:mod:`sinsemi.tracking`.
"""
