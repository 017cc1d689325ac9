"""The README cannot drift: its walkthrough runs as written against a fresh desk.

The shell blocks marked `<!-- walkthrough -->` in README.md run in order, in one `bash -eEuo pipefail` session,
in an empty temporary folder (with `.venv` pointing at this checkout's), against a real `desk up` on free ports
and a database of its own, with the officer's credentials in `CLIENT_ID` and `CLIENT_SECRET` as the README asks.
Two adaptations only, both outside the README's text: the intake address's port is the one this test chose, and
`curl` fails on an HTTP error (`--fail-with-body`), so a refused request fails the walkthrough as a failing
command does."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from shared.settings import REPO_ROOT
from tests.e2e.test_desk_up import _kill_all, _reader, _started_for, own_db  # noqa: F401 - own_db is a fixture
from tests.loopback import free_port

MARK = "<!-- walkthrough -->"
BLOCK = re.compile(re.escape(MARK) + r"\s*\n```sh\n(.*?)\n```", re.S)
START_TIMEOUT = 120
RUN_TIMEOUT = 180


def walkthrough_blocks(readme: str) -> list[str]:
    return BLOCK.findall(readme)


def test_the_readme_marks_its_walkthrough_blocks() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = walkthrough_blocks(readme)
    assert len(blocks) == readme.count(MARK), "every mark is followed by a ```sh block"
    joined = "\n".join(blocks)
    for step in ("/v1/oauth/token", "/submit", "/register", "/v1/webhooks"):
        assert step in joined, step


def _script(readme: str, intake: str) -> str:
    lines = [
        "trap 'echo \"walkthrough: this command failed: $BASH_COMMAND\" >&2' ERR",
        # an HTTP error fails the command, and its answer is shown even where the walkthrough captures it
        'curl() { local out rc=0; out=$(command curl --fail-with-body "$@") || rc=$?; printf "%s" "$out";'
        ' if [ $rc -ne 0 ]; then printf "curl %s\\n-> %s\\n" "$*" "$out" >&2; fi; return $rc; }',
    ]
    for n, block in enumerate(walkthrough_blocks(readme), 1):
        lines.append(f"echo '--- walkthrough block {n}'")
        lines.append(block.replace("http://127.0.0.1:8001", intake))
    return "\n".join(lines) + "\n"


def test_the_readme_walkthrough_runs_as_written(own_db: str, tmp_path: Path) -> None:  # noqa: F811
    data_dir, walk = tmp_path / "desk", tmp_path / "walk"
    walk.mkdir()
    (walk / ".venv").symlink_to(REPO_ROOT / ".venv")
    ports = {name: str(free_port()) for name in ("INTAKE_PORT", "EVALUATION_PORT", "MONITORING_PORT")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DESK_", "INTAKE_", "EVALUATION_", "MONITORING_"))}
    env.update(
        {
            "DESK_DATABASE_URL": own_db,
            "DATABASE_URL": own_db,
            "DESK_DATA_DIR": str(data_dir),
            "DESK_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **ports,
        }
    )
    desk = subprocess.Popen(
        [sys.executable, "-m", "desk.cli", "up"],
        cwd=REPO_ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_reader, args=(desk.stdout, lines), daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not any("Press Ctrl-C to stop" in line for line in seen):
            assert desk.poll() is None, "".join(seen)
            assert time.monotonic() < deadline, "desk up did not start in time:\n" + "".join(seen)
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                pass
        creds = json.loads((data_dir / "local-credentials.json").read_text(encoding="utf-8"))
        script = _script(
            (REPO_ROOT / "README.md").read_text(encoding="utf-8"), f"http://127.0.0.1:{ports['INTAKE_PORT']}"
        )
        run = subprocess.run(
            ["bash", "-eEuo", "pipefail", "-c", script],
            cwd=walk,
            env={**env, "CLIENT_ID": creds["client_id"], "CLIENT_SECRET": creds["client_secret"]},
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        assert run.returncode == 0, (
            f"the README walkthrough failed:\n{run.stderr[-4000:]}\n--- stdout\n{run.stdout[-4000:]}"
        )
        assert '"protocol_number":1' in run.stdout.replace(" ", ""), run.stdout
        assert sorted(p.name for p in walk.iterdir()) == [".venv"], "the walkthrough writes nothing in its folder"
    finally:
        # a failure above: still stop every process desk up started, not only desk up
        if desk.poll() is None:
            desk.terminate()
            try:
                desk.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        _kill_all(_started_for(str(data_dir)))
        desk.wait(timeout=10)
