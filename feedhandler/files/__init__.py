"""feedhandler/files."""
