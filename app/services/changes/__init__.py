"""Changes flowing out: the feed a poller pages through, built from the ledger."""
