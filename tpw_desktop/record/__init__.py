"""Typed records of a run: what the store keeps, the exports write and every view reads."""
