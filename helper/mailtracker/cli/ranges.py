"""The ``ranges`` command: the providers' and scanners' networks that decide where a fetch comes from."""

from pathlib import Path

from mailtracker.cli.registry import Action, argument, command
from mailtracker.core.paths import Home


@command("ranges", help="the networks of providers and scanners: status, update",
         private_files=False,
         description="Where a fetch comes from (Microsoft 365, Google, Apple's relays, mail gateways) "
         "decides its label. A dated snapshot of the ranges the providers publish ships with "
         "mailtracker; 'update' fetches fresh copies, 'status' says how old each is. 'load' adds a "
         "copy of Apple's egress-ip-ranges.csv by hand.",
         actions=[
             Action("status", "each source of network ranges, its date and age"),
             Action("update", "fetch the providers' current lists (only what changed)", [
                 argument("--mirror", metavar="URL", default="",
                          help="fetch every list by its file name from this base URL instead (an offline copy)"),
                 argument("--output", metavar="FILE", type=Path,
                          help="where to write the snapshot (default: the home's state folder; a pixel "
                          "server reads it with 'serve --origins FILE')"),
             ]),
             Action("load", "load a CSV of Apple's relay ranges (first column a CIDR)", [
                 argument("file", type=Path, help="Apple's egress-ip-ranges.csv"),
             ]),
             Action("forget", "remove what 'load' and 'update' stored (the shipped snapshot stays)"),
         ])
def cmd_ranges(args, home: Home) -> int:
    from mailtracker.desktop import ranges

    if args.ranges_action == "load":
        count = ranges.load_apple_ranges(home, args.file)
        print(f"Loaded {count} Apple relay ranges; the next fold labels the whole history again.")
    elif args.ranges_action == "forget":
        print("Removed the ranges stored here; the shipped snapshot is used." if ranges.forget_ranges(home)
              else "Nothing was stored; the shipped snapshot is used.")
    elif args.ranges_action == "update":
        reports, path = ranges.update_ranges(home, mirror=args.mirror, output=args.output)
        for report in reports:
            print(f"{report.outcome:<9}  {report.id:<13} {report.url}"
                  + (f": {report.detail}" if report.detail else ""))
        if path is None:
            from mailtracker.core.errors import RangesUpdateError

            raise RangesUpdateError("no list could be fetched; the ranges in use are unchanged")
        print(f"Wrote {path}; the next fold labels the whole history again.")
    else:
        for line in ranges.describe_ranges(home):
            print(line)
    return 0
