"""SinSEMI's Hydra configs (the repo's top-level ``conf/``), shipped in the wheel as ``sinsemi.conf``.

The CLIs compose them with ``config_path="pkg://sinsemi.conf"``; code that composes outside a CLI uses
``hydra.initialize_config_module("sinsemi.conf")``. Per-machine settings are not kept here: see
``local/example.yaml``.
"""
