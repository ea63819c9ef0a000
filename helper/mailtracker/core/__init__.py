"""The pure core both machines share: tokens, the hit line, CSV, timestamps, files, settings.

Nothing here opens a socket, starts a thread, or imports a desktop or server library."""
