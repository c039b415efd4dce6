"""Kafka to TimescaleDB recorder."""
