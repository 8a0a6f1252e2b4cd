"""The consent ledger and what reads it: events, the decision, preferences, subjects, notices."""
