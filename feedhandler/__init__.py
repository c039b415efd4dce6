"""feedhandler."""
