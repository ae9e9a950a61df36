"""compose.yaml: valid Compose, and wired the way the controller needs.

No container engine runs in CI, so the stack is never started here. What can be checked
without one is checked: Debian's docker-compose accepts the file (``config -q``), the file
validates against the Compose JSON schema that docker-compose ships, the Asterisk entrypoint
renders ``dialplan/`` correctly when run by bash on this machine, and the facts the stack
depends on hold (pinned images, health conditions, env names that Settings reads).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from controller.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DIALPLAN = ROOT / "dialplan"
SECRETS = {
    "CCC_ARI_PASSWORD": "ari-test-secret",
    "CCC_AMI_SECRET": "ami-test-secret",
    "CCC_DB_PASSWORD": "db-test-secret",
}
SERVICES = {"asterisk", "postgres", "redis", "controller", "worker", "migrate"}
CONTROLLER_SERVICES = ("controller", "worker", "migrate")
PLACEHOLDER = re.compile(r"__[A-Z][A-Z_]*__")


# ---- helpers ---------------------------------------------------------------------------


def docker_compose() -> str:
    path = shutil.which("docker-compose")
    if path is None:
        pytest.fail(
            "docker-compose is not installed: install Debian's `docker-compose` package "
            "(apt-get install docker-compose; `make` does it through scripts/system-deps) "
            "to validate compose.yaml",
            pytrace=False,
        )
    return path


def run_compose(tmp_path: Path, *args: str, secrets: dict[str, str] = SECRETS,
                ) -> subprocess.CompletedProcess[str]:
    # A clean environment and an empty env file: neither the caller's CCC_* variables nor a
    # developer's .env may fill in what compose.yaml must ask for.
    env_file = tmp_path / "empty.env"
    env_file.touch()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "LANG": "C.UTF-8", **secrets}
    return subprocess.run(
        [docker_compose(), "--project-directory", str(ROOT), "--env-file", str(env_file),
         "-f", str(COMPOSE), *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def mounts(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) for short and long volume syntax."""
    result = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            result.append((str(volume.get("source", "")), str(volume["target"]),
                           bool(volume.get("read_only", False))))
            continue
        parts = str(volume).split(":")
        mode = parts[2] if len(parts) > 2 else "rw"
        result.append((parts[0], parts[1], "ro" in mode.split(",")))
    return result


def image_tag(image: str) -> str:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def asterisk_script(compose: dict[str, Any]) -> str:
    entrypoint = compose["services"]["asterisk"]["entrypoint"]
    assert entrypoint[:2] == ["/bin/bash", "-c"], entrypoint
    return entrypoint[2].replace("$$", "$")  # as Compose hands it to bash


def conf_sections(path: Path) -> set[str]:
    return set(re.findall(r"^\[([^\]]+)\]", path.read_text(), flags=re.MULTILINE))


# ---- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


# ---- the file is valid Compose -----------------------------------------------------------


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    result = run_compose(tmp_path, "config", "-q")
    assert result.returncode == 0, f"docker-compose config -q failed:\n{result.stderr}"


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_each_secret_must_be_given(tmp_path: Path, secret: str) -> None:
    given = {k: v for k, v in SECRETS.items() if k != secret}
    result = run_compose(tmp_path, "config", "-q", secrets=given)
    assert result.returncode != 0, f"compose.yaml has a default for {secret}"
    assert secret in result.stderr


def test_file_matches_the_compose_schema(compose: dict[str, Any]) -> None:
    import jsonschema_rs  # installed with schemathesis (the test extra)

    # The Compose specification schema as Debian's docker-compose ships it (the one
    # `config` applies after interpolation); here it is applied to the file as written.
    script = Path(docker_compose()).read_text().splitlines()[0]
    python = script[2:].strip() if script.startswith("#!") else "python3"
    found = subprocess.run(
        [*python.split(), "-c",
         "import compose.config, pathlib; "
         "print(pathlib.Path(compose.config.__file__).with_name('compose_spec.json'))"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert found.returncode == 0, found.stderr
    schema = json.loads(Path(found.stdout.strip()).read_text())
    assert schema.get("title") == "Compose Specification"
    validator = jsonschema_rs.validator_for(schema)
    errors = [f"{'/'.join(map(str, e.instance_path)) or '<root>'}: {e.message}"
              for e in validator.iter_errors(compose)]
    assert errors == []


# ---- what the stack needs --------------------------------------------------------------


def test_every_service_is_there(services: dict[str, Any]) -> None:
    assert SERVICES <= set(services)


def test_images_are_pinned(services: dict[str, Any]) -> None:
    for name, service in services.items():
        image = service.get("image", "")
        assert image, f"{name} has no image name"
        tag = image_tag(image)
        assert tag and tag != "latest", f"{name}: {image} is not pinned to a version"
    assert re.fullmatch(r"postgres:1[56](\.\d+)*", services["postgres"]["image"])
    assert re.fullmatch(r"redis:7(\.\d+)*", services["redis"]["image"])
    asterisk = services["asterisk"]["image"]
    assert asterisk.startswith("andrius/asterisk:"), asterisk
    assert image_tag(asterisk).startswith("22."), f"{asterisk} is not Asterisk 22"


def test_controller_image_is_built_here_and_runs_unprivileged(services: dict[str, Any]) -> None:
    for name in CONTROLLER_SERVICES:
        assert services[name]["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name
    assert len({services[name]["image"] for name in CONTROLLER_SERVICES}) == 1
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, flags=re.MULTILINE)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0"), users


def test_commands_use_the_console_script(services: dict[str, Any]) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "cc-controller" in scripts
    assert services["controller"]["command"] == ["cc-controller", "run"]
    assert services["worker"]["command"] == ["cc-controller", "worker"]
    assert services["migrate"]["command"] == ["cc-controller", "migrate"]
    assert services["migrate"].get("restart", "no") == "no"


def test_storage_has_healthchecks(services: dict[str, Any]) -> None:
    postgres = " ".join(services["postgres"]["healthcheck"]["test"])
    redis = " ".join(services["redis"]["healthcheck"]["test"])
    assert "pg_isready" in postgres
    assert "redis-cli" in redis and "ping" in redis


def test_controller_healthcheck_probes_a_real_route(services: dict[str, Any]) -> None:
    probe = " ".join(services["controller"]["healthcheck"]["test"])
    env = environment(services["controller"])
    assert f"127.0.0.1:{env['CCC_API_PORT']}/healthz" in probe
    # Read, not imported: the route module pulls in the whole runtime.
    routes = (ROOT / "controller" / "api" / "routes" / "health.py").read_text()
    assert '@router.get("/healthz"' in routes


def test_start_order_waits_for_health_and_migrations(services: dict[str, Any]) -> None:
    def conditions(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}

    for name in ("controller", "worker"):
        assert conditions(name).items() >= {
            "postgres": "service_healthy",
            "redis": "service_healthy",
            "migrate": "service_completed_successfully",
        }.items(), name
    assert conditions("migrate") == {"postgres": "service_healthy"}
    assert "asterisk" in conditions("controller")


def test_dialplan_is_mounted_read_only_into_asterisk(services: dict[str, Any],
                                                     compose: dict[str, Any]) -> None:
    found = [(target, ro) for source, target, ro in mounts(services["asterisk"])
             if (ROOT / source).resolve() == DIALPLAN]
    assert found, "dialplan/ is not mounted into the asterisk service"
    target, read_only = found[0]
    assert read_only
    assert PurePosixPath(target).is_relative_to("/etc/asterisk")
    # The entrypoint renders every file from there into /etc/asterisk.
    assert f"{target}/*.conf" in asterisk_script(compose)


def test_every_placeholder_in_dialplan_is_substituted(compose: dict[str, Any]) -> None:
    script = asterisk_script(compose)
    placeholders = {m for f in DIALPLAN.glob("*.conf") for m in PLACEHOLDER.findall(f.read_text())}
    assert placeholders >= {"__ARI_PASSWORD__", "__AMI_SECRET__"}
    for placeholder in placeholders:
        assert f"s|{placeholder}|" in script, f"{placeholder} is never replaced"


def render(compose: dict[str, Any], tmp_path: Path, secrets: dict[str, str],
           ) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run the asterisk service's entrypoint with bash, writing into tmp_path/etc."""
    script = asterisk_script(compose)
    etc = tmp_path / "etc"
    etc.mkdir()
    swaps = {
        "/etc/asterisk/ccc/": f"{DIALPLAN}/",
        "/etc/asterisk/": f"{etc}/",
        'exec /usr/local/bin/entrypoint.sh "$@"': 'exec "$@"',
    }
    for old, new in swaps.items():
        assert old in script, f"the asterisk entrypoint no longer contains {old!r}"
        script = script.replace(old, new)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **secrets}
    result = subprocess.run(["bash", "-c", script, "ccc-render-config", "true"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    return result, etc


def test_asterisk_entrypoint_renders_the_dialplan(compose: dict[str, Any], tmp_path: Path) -> None:
    result, etc = render(compose, tmp_path, SECRETS)
    assert result.returncode == 0, result.stderr
    sources = sorted(DIALPLAN.glob("*.conf"))
    assert sorted(p.name for p in etc.iterdir()) == [p.name for p in sources]
    for path in etc.iterdir():
        assert not PLACEHOLDER.search(path.read_text()), path.name

    ari, manager = (etc / "ari.conf").read_text(), (etc / "manager.conf").read_text()
    assert re.search(r"^password = ari-test-secret$", ari, flags=re.MULTILINE)
    assert re.search(r"^secret = ami-test-secret$", manager, flags=re.MULTILINE)
    # Reachable from the controller's container, still not from outside private ranges.
    assert re.search(r"^bindaddr = 0\.0\.0\.0$", (etc / "http.conf").read_text(), re.MULTILINE)
    assert re.search(r"^bindaddr = 0\.0\.0\.0$", manager, flags=re.MULTILINE)
    assert "permit = 172.16.0.0/255.240.0.0" in manager
    assert "deny = 0.0.0.0/0.0.0.0" in manager
    assert "127.0.0.1/255.255.255.255" not in manager
    assert "bind = 0.0.0.0:5060" in (etc / "pjsip.conf").read_text()
    # Everything else is copied as it is.
    for name in ("extensions.conf", "modules.conf", "musiconhold.conf", "rtp.conf"):
        assert (etc / name).read_text() == (DIALPLAN / name).read_text(), name


@pytest.mark.parametrize("bad", ["", "semi;colon", "pipe|pipe", "amp&amp", "sp ace"])
def test_asterisk_entrypoint_refuses_unsafe_secrets(compose: dict[str, Any], tmp_path: Path,
                                                    bad: str) -> None:
    result, _ = render(compose, tmp_path, {**SECRETS, "CCC_AMI_SECRET": bad})
    assert result.returncode != 0
    assert "CCC_AMI_SECRET" in result.stderr


def test_recordings_volume_is_shared(compose: dict[str, Any], services: dict[str, Any]) -> None:
    recordings = "/var/spool/asterisk/recording"
    asterisk = {src for src, target, _ in mounts(services["asterisk"]) if target == recordings}
    controller = {source for source, _, _ in mounts(services["controller"])}
    shared = asterisk & controller
    assert shared, "asterisk and controller share no recordings volume"
    assert shared <= set(compose.get("volumes") or {}), "recordings should be a named volume"


def test_environment_uses_the_names_settings_reads(services: dict[str, Any]) -> None:
    prefix = Settings.model_config["env_prefix"]
    known = {prefix + name.upper() for name in Settings.model_fields} | {"CCC_CONFIG_FILE"}
    for name in CONTROLLER_SERVICES:
        env = environment(services[name])
        unknown = sorted(set(env) - known)
        assert not unknown, f"{name} sets variables Settings does not read: {unknown}"
        assert env["CCC_ARI_URL"] == "http://asterisk:8088"
        assert env["CCC_AMI_HOST"] == "asterisk"
        assert re.fullmatch(r"postgresql://ccc:.+@postgres:5432/ccc", env["CCC_DATABASE_URL"])
        assert env["CCC_REDIS_URL"].startswith("redis://redis:6379/")
        assert env["CCC_CELERY_BROKER_URL"].startswith("redis://redis:6379/")
        assert env["CCC_CELERY_BROKER_URL"] != env["CCC_REDIS_URL"]


def test_api_listens_where_it_is_published(services: dict[str, Any]) -> None:
    env = environment(services["controller"])
    assert env["CCC_API_HOST"] == "0.0.0.0"
    assert any(str(port).endswith(f":{env['CCC_API_PORT']}")
               for port in services["controller"]["ports"])


def test_credentials_match_asterisk(services: dict[str, Any]) -> None:
    controller, asterisk = environment(services["controller"]), environment(services["asterisk"])
    for secret in ("CCC_ARI_PASSWORD", "CCC_AMI_SECRET"):
        assert controller[secret] == asterisk[secret] and secret in controller[secret]
    assert controller["CCC_ARI_USER"] in conf_sections(DIALPLAN / "ari.conf")
    assert controller["CCC_AMI_USER"] in conf_sections(DIALPLAN / "manager.conf")
    app = re.search(r"^CCC_APP = (\S+)$", (DIALPLAN / "extensions.conf").read_text(), re.MULTILINE)
    assert app and controller["CCC_ARI_APP"] == app.group(1)


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def sent(path: str) -> bool:
        # Docker's rule: the last pattern matching the path or one of its parents wins.
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        included = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            glob = pattern.lstrip("!").rstrip("/")
            if any(fnmatch(p, glob) for p in prefixes):
                included = negated
        return included

    for path in ("pyproject.toml", "controller/settings.py",
                 "controller/storage/migrations/versions/0001_initial.py"):
        assert sent(path), path
    for path in (".env", "controller.env", ".venv/bin/python", ".git/HEAD", ".local/started",
                 "controller/__pycache__/settings.cpython-311.pyc", "tests/unit/test_compose.py"):
        assert not sent(path), path
