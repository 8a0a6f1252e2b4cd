"""Opting in: subscription requests by API and form, and their double opt-in confirmation."""
