"""The privacy security center: mailbox-proof access, what is held, download, erasure, rights."""
