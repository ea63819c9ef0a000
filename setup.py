"""setuptools' build (the settings are in setup.cfg), plus the Thunderbird add-on: every
non-editable build puts the .xpi of its own version into the package
(``mailtracker/addon/mailtracker-<version>.xpi``), which ``mailtracker addon`` writes out.

The .xpi is built by packaging/build_xpi.py from extension/ (both are in the sdist), so a
wheel, an sdist and a checkout all give the add-on of exactly the helper they install.
An editable install builds it from the checkout's extension/ when asked instead.
"""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithAddon(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        sys.path.insert(0, str(ROOT / "packaging"))
        import build_xpi

        build_xpi.build(Path(self.build_lib) / "mailtracker" / "addon")


setup(cmdclass={"build_py": BuildPyWithAddon})
