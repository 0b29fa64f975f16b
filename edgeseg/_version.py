"""The package version, in the core so every layer can record it without importing the package root."""

__version__ = "0.1.0"
