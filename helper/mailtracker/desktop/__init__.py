"""The desktop side: folding the logs, the register and its read model, the daemon, the
native messaging host, the tray, the report, and the installers."""
