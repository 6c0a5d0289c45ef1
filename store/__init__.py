"""Persistence and domain core: ORM models, registry, queries. Imports nothing of ours."""
