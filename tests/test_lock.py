"""The locks agree with pyproject.toml: every pin there is in the lock with the same version (both README commands
install from requirements/dev.txt, the image from requirements/image.txt), the image runs the versions the tests
ran, and the image holds neither the embedded PostgreSQL nor the dev tools. `python3 dev.py lock` rewrites them."""

from __future__ import annotations

import re
import tomllib

from shared.settings import REPO_ROOT

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;#]+)")


def _name(raw: str) -> str:
    return re.sub(r"[-_.]+", "-", raw).lower()


def _pins(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        m = _PIN.match(line.strip())
        if m:
            out[_name(m[1])] = m[2]
    return out


def _lock(name: str) -> dict[str, str]:
    return _pins((REPO_ROOT / "requirements" / name).read_text().splitlines())


def test_every_pin_of_the_project_is_in_the_locks_with_its_version() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    base = _pins(project["dependencies"])
    extras = {k: _pins(v) for k, v in project["optional-dependencies"].items()}
    assert base and set(extras) >= {"dev", "local", "s3"}
    dev, image = _lock("dev.txt"), _lock("image.txt")
    for pins, lock, where in (
        (base, dev, "dev.txt"),
        (extras["dev"], dev, "dev.txt"),
        (extras["local"], dev, "dev.txt"),
        (extras["s3"], dev, "dev.txt"),
        (base, image, "image.txt"),
        (extras["s3"], image, "image.txt"),
    ):
        for name, version in pins.items():
            assert lock.get(name) == version, f"{name}=={version} is {lock.get(name)} in requirements/{where}"


def test_the_image_runs_what_the_tests_ran_without_local_or_dev_tools() -> None:
    dev, image = _lock("dev.txt"), _lock("image.txt")
    assert len(image) > 20 and len(dev) > len(image)
    assert {n: v for n, v in image.items() if dev.get(n) != v} == {}
    for left_out in ("pgserver", "pytest", "mypy", "ruff", "schemathesis", "pip-tools"):
        assert left_out not in image, left_out
    assert {"pgserver", "boto3", "pytest"} <= set(dev)
