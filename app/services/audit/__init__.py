"""Proof for the DPO: trail, checkpoints, package, opt-in evidence, retention, the DPO page."""
