"""One sans-I/O parser per venue, all feeding feedhandler.sync."""
