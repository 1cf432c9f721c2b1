"""Experiment tracking: the job's Lightning logger (:mod:`~sinsemi.tracking.loggers`), what a job
reports to it (:mod:`~sinsemi.tracking.report`), and the upload of offline W&B runs
(:mod:`~sinsemi.tracking.wandb_sync`)."""
