"""What leaves the service: the mail outbox and its delivery."""
