"""Prefect flows that run the sgan pipeline end to end."""
