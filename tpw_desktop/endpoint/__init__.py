"""Measuring an OpenAI-compatible server that tpw didn't start, against this machine's power."""
