"""The desktop dashboard: the only package that imports Qt (PySide6)."""
