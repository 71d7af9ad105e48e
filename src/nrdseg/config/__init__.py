"""The typed run configuration: YAML files with ``_base_`` inheritance and ``--set KEY=VALUE``
overrides, turned into dataclasses whose errors name the key (``config.run.load_config``)."""
