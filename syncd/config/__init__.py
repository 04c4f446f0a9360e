"""Configuration: YAML with positions, interpolation, validation and the JSON Schema.

``syncd.config.loader.load_config`` reads a file; ``syncd.config.model`` holds the models.
"""
