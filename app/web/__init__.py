"""HTML pages for people, and the unauthenticated service endpoints."""
