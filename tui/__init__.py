"""xtts-ft terminal studio (Textual). It drives the engine in separate processes."""
