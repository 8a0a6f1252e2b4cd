"""The identity graph: a person and the identifiers they are known by."""
