"""Pure rules and value types: no Flask, no database session."""
