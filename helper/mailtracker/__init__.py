"""mailtracker: email-open tracking for Thunderbird users who run their own pixel server."""

__version__ = "0.1.0"
