"""Data files shipped with tpw-desktop (workloads, demo power traces, icon)."""
