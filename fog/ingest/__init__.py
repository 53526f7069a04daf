"""Ingest backends: each turns a transport into Receptions on the cycle queue."""
