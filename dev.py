#!/usr/bin/env python3
"""Developer entry point, standard library only: `python3 dev.py up` and `python3 dev.py test [pytest args]`.

It creates `.venv` when missing, installs the project with its dev tools (`pip install -e .[dev]`) only
when pyproject.toml changed since the last install, then hands over to `.venv/bin/desk up` or
`.venv/bin/python -m pytest`. No PostgreSQL is needed: without DATABASE_URL / TEST_DATABASE_URL the
desk and the tests start an embedded one under `.desk/`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".dev-install-stamp"

USAGE = """usage: python3 dev.py COMMAND [ARGS...]

  up                 install what is missing, then start the desk (`desk up`)
  test [ARGS...]     install what is missing, then run the test suite (ARGS go to pytest)
  desk [ARGS...]     install what is missing, then run any `desk` command (e.g. `desk openapi`)
"""


def say(message: str) -> None:
    print(f"dev: {message}", flush=True)


def fingerprint() -> str:
    """What the installed environment depends on: the project file and the interpreter's version."""
    h = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    h.update(f"{sys.version_info.major}.{sys.version_info.minor}".encode())
    return h.hexdigest()


def ensure_venv() -> None:
    if not PYTHON.exists():
        say(f"creating {VENV.name} with Python {sys.version.split()[0]}")
        try:
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)  # noqa: S603
        except subprocess.CalledProcessError:
            sys.exit("dev: could not create the virtual environment "
                     "(on Debian/Ubuntu: apt-get install python3-venv), then run this again")
    wanted = fingerprint()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    say("installing the project and its dev tools (pip install -e .[dev]); this happens when pyproject.toml "
        "changes")
    started = time.monotonic()
    cmd = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "--quiet", "-e", ".[dev]"]
    if subprocess.run(cmd, cwd=ROOT).returncode != 0:  # noqa: S603
        sys.exit("dev: installation failed (see pip's message above)")
    STAMP.write_text(wanted + "\n")
    say(f"installed in {time.monotonic() - started:.0f}s")


def run(argv: list[str]) -> None:
    """Replace this process, so signals (Ctrl-C) and the exit code are the program's own."""
    os.chdir(ROOT)
    sys.stdout.flush()
    os.execv(argv[0], argv)  # noqa: S606 - our own argv


def main(args: list[str]) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be run by any python3
        sys.exit(f"dev: Python 3.11 or newer is needed (this is {sys.version.split()[0]})")
    if not args or args[0] in ("-h", "--help", "help") or args[0] not in ("up", "test", "desk"):
        print(USAGE, end="")
        sys.exit(0 if args and args[0] in ("-h", "--help", "help") else 2)
    command, rest = args[0], args[1:]
    ensure_venv()
    if command == "up":
        say("starting the desk")
        run([str(BIN / "desk"), "up", *rest])
    elif command == "desk":
        run([str(BIN / "desk"), *rest])
    else:
        where = "TEST_DATABASE_URL" if os.environ.get("TEST_DATABASE_URL") else "the embedded PostgreSQL in .desk/test"
        say(f"running the tests against {where}")
        run([str(PYTHON), "-m", "pytest", *rest])


if __name__ == "__main__":
    main(sys.argv[1:])
