"""Pure rules and types shared by every store: no I/O here."""
