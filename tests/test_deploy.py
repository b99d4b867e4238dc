"""The shipped deployment files, run the way they will run: there is no Docker engine or systemd here, so each
test builds the file system the file describes (a fresh virtual environment, the same files copied, the code
read-only, only the data folder writable, an unprivileged user) and starts its command with its environment."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from webhook.builders import envelope, incoming_call, new_id
from webhook.testing import LocalGraphKeys

from .support import ROOT, free_port

pytestmark = pytest.mark.slow

USER = 10001  # the Dockerfile's USER; the systemd unit's User= is mapped to it too


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = dockerfile.read_text().replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def unit_settings(unit: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def shared_interpreter() -> str:
    """A Python of this version that the unprivileged user can run: this one, unless it lives in a folder
    only root may enter (pyenv under /root, say), else the system's."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        real = Path(candidate).resolve()
        base = Path(sys.base_prefix) if candidate == sys.executable else real.parent.parent
        if real.exists() and all(folder.stat().st_mode & 0o001 for folder in (real, *real.parents, *base.parents)):
            return str(real)
    pytest.skip(f"no {version} that an unprivileged user may run (this one is under a folder only root enters)")


@pytest.fixture(scope="module")
def machine() -> Iterator[Path]:
    """A folder standing for the machine's root, readable by the unprivileged user, with a fresh venv in which
    the project is installed from a copy of its files (as the image's `pip install .`)."""
    root = Path(tempfile.mkdtemp(prefix="comms-webhook-machine-", dir="/tmp"))
    root.chmod(0o755)
    source = root / "src"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode()
    for name in filter(None, files.split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([shared_interpreter(), "-m", "venv", str(root / "venv")], check=True)
    subprocess.run([str(root / "venv" / "bin" / "pip"), "install", "-q", str(source)], check=True, capture_output=True)
    try:
        yield root
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(root)], check=False)
        shutil.rmtree(root, ignore_errors=True)


def read_only(folder: Path) -> None:
    subprocess.run(["chmod", "-R", "a-w", str(folder)], check=True)


def writable_by_user(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    os.chown(folder, USER, USER)


def as_user() -> None:
    os.setgroups([])
    os.setgid(USER)
    os.setuid(USER)


def get(url: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read()
            return response.status, json.loads(body) if body else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def check_serves(port: int, process: subprocess.Popen[bytes], keys: LocalGraphKeys, log: Path) -> None:
    """/healthz, /readyz and a signed POST, as a load balancer and Graph would send them."""
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, log.read_text()
        try:
            if get(base + "/healthz")[0] == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    status, ready = get(base + "/readyz")
    assert status == 200, ready
    token = keys.token(aud="image-bot", tid="tenant-1")
    body = json.dumps(envelope(incoming_call(new_id()))).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    assert get(base + "/api/calls", headers, body)[0] == 202, log.read_text()


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def build_image(
    steps: list[tuple[str, str]], machine: Path, paths: dict[str, Path]
) -> tuple[dict[str, str], Path, list[str]]:
    """Carry out the Dockerfile's steps on this machine, its paths moved under ``paths``: the environment,
    working directory and command the image would run with."""
    env: dict[str, str] = {}
    workdir = paths["/app"]
    command: list[str] = []
    for kind, rest in steps:
        if kind == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = on_disk(value, paths)
        elif kind == "WORKDIR":
            workdir = Path(on_disk(rest, paths))
            workdir.mkdir(parents=True, exist_ok=True)
        elif kind == "COPY":
            *sources, target = rest.split()
            for source in sources:
                copy_into(machine / "src" / source, workdir, target)
        elif kind == "RUN":
            run_step(rest, paths)
        elif kind == "USER":
            assert rest == str(USER)
        elif kind == "CMD":
            command = json.loads(rest)
    return env, workdir, command


def on_disk(value: str, paths: dict[str, Path]) -> str:
    """A path inside the image, as this machine holds it."""
    for inside, outside in paths.items():
        value = value.replace(inside, str(outside))
    return value


def run_step(command: str, paths: dict[str, Path]) -> None:
    """The image's one ``RUN``: the install is this machine's venv; the folders it makes, made here."""
    assert command.startswith("pip install . && "), command  # installed in the machine's venv, from these files
    assert "mkdir -p /data && chown 10001:10001 /data" in command
    writable_by_user(paths["/data"])
    writable_by_user(paths["/home/webhook"])


def copy_into(origin: Path, workdir: Path, target: str) -> None:
    """``COPY origin target``, relative to ``workdir``."""
    destination = workdir / target / origin.name if target.endswith("/") else workdir / target
    if origin.is_dir():
        shutil.copytree(origin, destination, dirs_exist_ok=True)
    else:
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(origin, destination)


def test_the_docker_image_runs_as_its_user_with_only_the_data_volume_writable(machine: Path) -> None:
    steps = instructions(ROOT / "deploy" / "Dockerfile")
    kinds = {kind for kind, _ in steps}
    assert kinds <= {"FROM", "ENV", "WORKDIR", "COPY", "RUN", "USER", "VOLUME", "EXPOSE", "HEALTHCHECK", "CMD"}, kinds
    image = machine / "image"
    shutil.rmtree(image, ignore_errors=True)
    paths = {"/app": image / "app", "/data": image / "data", "/home/webhook": image / "home"}

    env, workdir, command = build_image(steps, machine, paths)
    assert env["WEBHOOK_DATA_DIR"] == str(paths["/data"])
    read_only(paths["/app"])
    port = free_port()
    log = machine / "image.log"
    with LocalGraphKeys() as keys, log.open("wb") as out:
        run_env = {
            **env,
            "PATH": f"{machine / 'venv' / 'bin'}:{os.environ['PATH']}",
            "HOME": str(paths["/home/webhook"]),
            "PORT": str(port),
            "WEBHOOK_APP_ID": "image-bot",
            "WEBHOOK_OPENID_CONFIG_URL": keys.config_url,
        }
        process = subprocess.Popen(
            command, cwd=workdir, env=run_env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=as_user
        )
        try:
            check_serves(port, process, keys, log)
        finally:
            stop(process)
    assert "Permission denied" not in log.read_text()
    assert (paths["/data"] / "comms-webhook.sqlite3").exists()
    assert list((paths["/data"] / "journal").glob("journal-*.jsonl"))


def test_the_systemd_unit_runs_with_only_its_state_directory_writable(machine: Path) -> None:
    unit = unit_settings(ROOT / "deploy" / "comms-webhook.service")
    opt, state, etc = (
        Path(unit["WorkingDirectory"][0]),
        Path(unit["ReadWritePaths"][0]),
        Path(unit["EnvironmentFile"][0]),
    )
    assert unit["ProtectSystem"] == ["strict"] and unit["StateDirectory"] == [state.name]
    host = machine / "host"
    shutil.rmtree(host, ignore_errors=True)
    paths = {str(opt): host / "opt", str(state): host / "state", str(etc.parent): host / "etc"}

    shutil.copytree(machine / "src", paths[str(opt)])  # the checkout the unit's comments describe
    (paths[str(opt)] / ".venv").symlink_to(machine / "venv")
    writable_by_user(paths[str(state)])
    port = free_port()
    paths[str(etc.parent)].mkdir(parents=True)
    with LocalGraphKeys() as keys:
        Path(on_disk(str(etc), paths)).write_text(
            f"WEBHOOK_APP_ID=image-bot\nWEBHOOK_OPENID_CONFIG_URL={keys.config_url}\n"
        )
        read_only(paths[str(opt)])
        env = {"PATH": os.environ["PATH"], "HOME": str(host)}
        for line in Path(on_disk(str(etc), paths)).read_text().splitlines():
            key, _, value = line.partition("=")
            env[key] = value
        for assignments in unit["Environment"]:
            for pair in shlex.split(assignments):
                key, _, value = pair.partition("=")
                env[key] = on_disk(value, paths)
        command = [on_disk(arg, paths) for arg in shlex.split(unit["ExecStart"][0])]
        command[command.index("--bind") + 1] = f"127.0.0.1:{port}"  # the unit's 8000 may be taken here
        log = machine / "systemd.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, cwd=on_disk(str(opt), paths), env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=as_user
            )
            try:
                check_serves(port, process, keys, log)
            finally:
                stop(process)
    assert "Permission denied" not in log.read_text()
    assert (paths[str(state)] / "comms-webhook.sqlite3").exists()
    assert list((paths[str(state)] / "journal").glob("journal-*.jsonl"))


def test_the_dockerfiles_and_the_compose_file_pass_their_linters() -> None:
    bin_dir = Path(sys.executable).parent
    hadolint, schema = bin_dir / "hadolint", bin_dir / "check-jsonschema"
    dockerfiles = [str(ROOT / "deploy" / "Dockerfile"), str(ROOT / "deploy" / "Dockerfile.plugin-example")]
    linted = subprocess.run([str(hadolint), *dockerfiles], capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout
    compose = ROOT / "deploy" / "docker-compose.yml"
    checked = subprocess.run(
        [str(schema), "--builtin-schema", "vendor.compose-spec", str(compose)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
