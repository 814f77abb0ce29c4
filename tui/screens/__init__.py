"""The studio's screens, one per step of the wizard (each reachable directly)."""
