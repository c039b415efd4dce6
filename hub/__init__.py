"""Shared parts of the market-data hub: config, event schema, buses, service clients, CLI."""
