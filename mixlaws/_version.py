"""The version of mixlaws (one place, imported by the package and its artifacts)."""

__version__ = "0.1.0"
