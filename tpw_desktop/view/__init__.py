"""What the window shows, computed without Qt: the live series and the dashboard's figures."""
