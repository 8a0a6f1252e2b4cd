"""Importing existing lists with their provenance, and asking imported contacts again."""
