"""The one exception hierarchy of mailtracker, with stable numeric codes.

A code travels unchanged to the extension (native messaging error replies) and
becomes the command line's exit code. Append new codes; never renumber.
"""


class MailtrackerError(Exception):
    """Base of every error mailtracker reports to a person."""

    code = 1


class NotInitialisedError(MailtrackerError):
    """The home has no config or secret yet."""

    code = 10


class ConfigError(MailtrackerError):
    """The config file or a setting is invalid."""

    code = 11


class SecretError(MailtrackerError):
    """The shared secret is missing, unreadable or malformed."""

    code = 12


class MissingExtraError(MailtrackerError):
    """A command needs a library of an install extra ('server' or 'desktop') that is not installed."""

    code = 13
    # The message names the install command that fits this install: no general hint after it.
    fix_in_message = True


# 20 was TokenError, which nothing raised; a code is never given to another error.


class LogWriteError(MailtrackerError):
    """An append-only log (tags or hits) could not be written."""

    code = 30


class FileAccessError(MailtrackerError):
    """A file or folder could not be read or written (permissions, a full disk, a missing folder)."""

    code = 32


class LockTimeoutError(MailtrackerError):
    """Another mailtracker process held a lock for too long."""

    code = 31


class RegisterLockedError(MailtrackerError):
    """register.csv could not be replaced, e.g. it is open in a spreadsheet."""

    code = 40


class ServerError(MailtrackerError):
    """The pixel server cannot start or run."""

    code = 50


class SetupError(MailtrackerError):
    """``setup-server`` cannot set this machine up (not root, no systemd, an unusable install)."""

    code = 51


class InstallError(MailtrackerError):
    """The helper cannot be installed for Thunderbird here as asked (e.g. a launcher path the
    platform cannot spell)."""

    code = 52


class ProtocolError(MailtrackerError):
    """A native messaging frame or request is malformed."""

    code = 60


class UnknownTagError(MailtrackerError):
    """No tag with that id (or Message-ID) exists in tags.csv."""

    code = 61


class PullError(MailtrackerError):
    """Hits could not be pulled from the pixel server over HTTP."""

    code = 70


class PullAuthError(PullError):
    """The pixel server refused the pull token (its secret is not this desktop's)."""

    code = 71


class SyncthingError(MailtrackerError):
    """A running Syncthing could not be asked about its folders."""

    code = 72


class RangesUpdateError(MailtrackerError):
    """No provider's list of network ranges could be fetched."""

    code = 73


class AlreadyRunningError(MailtrackerError):
    """Another process already does this job (a second tray daemon for the same home)."""

    code = 80


class TrackingPausedError(MailtrackerError):
    """Tracking is paused from the tray: no new tags until it is resumed."""

    code = 81


class NotificationUnavailable(MailtrackerError):
    """No desktop notification can be shown here (no D-Bus service, no osascript)."""

    code = 82


class CheckFailedError(MailtrackerError):
    """``doctor`` found a broken link (its output names it)."""

    code = 90
