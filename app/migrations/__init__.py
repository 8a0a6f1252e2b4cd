"""Alembic migrations; run with `consent-center db upgrade`."""
