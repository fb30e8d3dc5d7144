"""tpw and Prometheus: its own figures out as metrics (``exporter``), a fleet's back in (``fleet``)."""
