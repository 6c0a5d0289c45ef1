"""One adapter per messenger: turns its updates into Incoming and renders Reply."""
