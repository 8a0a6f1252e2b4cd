"""Use cases: each public function takes a Session and plain values and owns its transaction."""
