"""The ``syncd`` command line: parses, calls the engine or the store, prints."""
