"""Reusable widgets of the studio (each with its DEFAULT_CSS)."""
