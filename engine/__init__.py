"""xtts-ft engine: everything that does work, importable and headless (never imports textual)."""

__version__ = "0.1.0"
