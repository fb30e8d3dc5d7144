"""The read side: stored sessions as history rows, comparisons, charts and shareable reports."""
