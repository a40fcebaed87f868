"""Use cases: what a user does, written once for the command line, the
desktop app and scripts (each adapter turns its inputs into a call here and
the result into text or pixels)."""
