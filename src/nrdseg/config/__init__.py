"""The typed run configuration: YAML files with ``_base_`` inheritance and ``--cfg-options``
overrides, turned into dataclasses whose errors name the key (``config.run.load_config``)."""
