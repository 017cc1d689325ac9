#!/usr/bin/env python3
"""Developer entry point, standard library only: `python3 dev.py up` and `python3 dev.py test [pytest args]`.

It creates `.venv` when missing, installs the locked dependencies (`requirements/dev.txt`, written by
`python3 dev.py lock`) and the project only when pyproject.toml or the lock changed since the last install,
then hands over to `.venv/bin/desk up` or
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
  lock               after changing a pin in pyproject.toml: write the locks (requirements/dev.txt for
                     development and tests, requirements/image.txt for the container image)
"""


def say(message: str) -> None:
    print(f"dev: {message}", flush=True)


LOCK = ROOT / "requirements" / "dev.txt"


def fingerprint() -> str:
    """What the installed environment depends on: the project file, its lock and the interpreter's version."""
    h = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    h.update(LOCK.read_bytes())
    h.update(f"{sys.version_info.major}.{sys.version_info.minor}".encode())
    return h.hexdigest()


def ensure_venv() -> None:
    if not PYTHON.exists():
        say(f"creating {VENV.name} with Python {sys.version.split()[0]}")
        try:
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)  # noqa: S603
        except subprocess.CalledProcessError:
            sys.exit(
                "dev: could not create the virtual environment "
                "(on Debian/Ubuntu: apt-get install python3-venv), then run this again"
            )
    wanted = fingerprint()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    say(
        "installing the locked dependencies (requirements/dev.txt) and the project; this happens when "
        "pyproject.toml or the lock changes"
    )
    started = time.monotonic()
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "--quiet"]
    for cmd in ([*pip, "-r", str(LOCK)], [*pip, "--no-deps", "-e", "."]):
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:  # noqa: S603
            sys.exit("dev: installation failed (see pip's message above)")
    STAMP.write_text(wanted + "\n")
    say(f"installed in {time.monotonic() - started:.0f}s")


LOCKS = {"dev.txt": ("dev", "local", "s3"), "image.txt": ("s3",)}


def write_locks() -> None:
    """The locks, resolved from pyproject.toml's pins (pip-tools): every transitive dependency pinned. Both README
    commands install from requirements/dev.txt, the image from requirements/image.txt."""
    for name, extras in LOCKS.items():
        cmd = [
            str(BIN / "pip-compile"),
            "--quiet",
            "--strip-extras",
            "--allow-unsafe",
            "--no-emit-index-url",
            "--no-emit-find-links",
            *(f"--extra={e}" for e in extras),
            f"--output-file=requirements/{name}",
            "pyproject.toml",
        ]
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:  # noqa: S603
            sys.exit(f"dev: could not write requirements/{name}")
        say(f"wrote requirements/{name}")
    STAMP.unlink(missing_ok=True)  # the next command installs from the new lock


def run(argv: list[str]) -> None:
    """Replace this process, so signals (Ctrl-C) and the exit code are the program's own."""
    os.chdir(ROOT)
    sys.stdout.flush()
    os.execv(argv[0], argv)  # noqa: S606 - our own argv


def main(args: list[str]) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be run by any python3
        sys.exit(f"dev: Python 3.11 or newer is needed (this is {sys.version.split()[0]})")
    if not args or args[0] in ("-h", "--help", "help") or args[0] not in ("up", "test", "desk", "lock"):
        print(USAGE, end="")
        sys.exit(0 if args and args[0] in ("-h", "--help", "help") else 2)
    command, rest = args[0], args[1:]
    ensure_venv()
    if command == "up":
        say("starting the desk")
        run([str(BIN / "desk"), "up", *rest])
    elif command == "desk":
        run([str(BIN / "desk"), *rest])
    elif command == "lock":
        write_locks()
    else:
        where = "TEST_DATABASE_URL" if os.environ.get("TEST_DATABASE_URL") else "the embedded PostgreSQL in .desk/test"
        say(f"running the tests against {where}")
        run([str(PYTHON), "-m", "pytest", *rest])


if __name__ == "__main__":
    main(sys.argv[1:])
