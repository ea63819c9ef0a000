"""The VPS side: the pixel server, its hits log, and the hits files it serves to a desktop.

Its imports stay within mailtracker.core and the server's own libraries (a test checks)."""
