"""syncd: keeps an application's group store in step with a directory."""

__version__ = "0.1.0"
