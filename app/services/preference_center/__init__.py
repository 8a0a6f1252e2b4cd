"""The preference page behind a signed link; a message's links and one-click unsubscribe."""
