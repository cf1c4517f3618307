"""Pure decisions: no I/O, no third-party clients (numpy is data, not I/O)."""
