"""services/Dockerfile and .dockerignore, checked without building (no Docker engine here).

One Dockerfile builds all six services: a build stage installs the libraries and the
service (non-editable, pinned by constraints.txt) into a virtualenv, the runtime stage
copies only that venv and runs ``python -m <package>`` as a non-root user.
"""

import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from storefront_stack.topology import SERVICES, Service

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "services" / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
LIBRARIES = ("libs/storefront_kit", "libs/jwt_core_lib")


@dataclass(frozen=True)
class Instruction:
    stage: str
    keyword: str
    arguments: str


@cache
def instructions() -> tuple[Instruction, ...]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued instruction"
    found = []
    stage = ""
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.fullmatch(r"(?P<image>\S+)(?:\s+AS\s+(?P<name>\S+))?", arguments, re.I)
            assert match, line
            stage = match["name"] or match["image"]
        found.append(Instruction(stage, keyword, arguments.strip()))
    return tuple(found)


def stage(name: str) -> list[Instruction]:
    return [i for i in instructions() if i.stage == name and i.keyword != "FROM"]


def stages() -> list[str]:
    return [i.stage for i in instructions() if i.keyword == "FROM"]


def base_of(name: str) -> str:
    line = next(i for i in instructions() if i.keyword == "FROM" and i.stage == name)
    return line.arguments.split()[0]


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` (relative to the context) out of the build."""
    excluded = False
    for raw in DOCKERIGNORE.read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!").strip("/")
        regex = (
            re.escape(pattern)
            .replace(r"\*\*/", "(?:.*/)?")
            .replace(r"\*\*", ".*")
            .replace(r"\*", "[^/]*")
            .replace(r"\?", "[^/]")
        )
        parts = path.strip("/").split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(re.fullmatch(regex, prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


def test_one_base_image_for_every_stage() -> None:
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.M)
    assert default, "the base image is one ARG"
    assert default[1] == "python:3.11-slim"
    for name in stages():
        assert base_of(name) in ("${PYTHON_IMAGE}", *stages()), f"{name} starts elsewhere"


def test_the_service_image_is_the_default_target_and_multi_stage() -> None:
    assert stages()[-1] == "service", "the last stage is what a plain `docker build` makes"
    assert "sandbox" in stages(), "the sandboxes build from the same file (--target sandbox)"
    runtime = stage("service")
    copies = [i.arguments for i in runtime if i.keyword == "COPY"]
    assert copies == ["--from=service-build /opt/venv /opt/venv"], "runtime gets the venv only"
    assert not any(i.keyword == "RUN" and "pip" in i.arguments for i in runtime)


def test_build_installs_the_libraries_and_the_service_non_editable_and_pinned() -> None:
    build = stage("service-build")
    args = {i.arguments.split("=")[0] for i in build if i.keyword == "ARG"}
    assert {"SERVICE", "PACKAGE", "ENV_PREFIX"} <= args
    installs = [i.arguments for i in build if i.keyword == "RUN" and "pip install" in i.arguments]
    assert len(installs) == 1
    install = installs[0]
    assert "-c constraints.txt" in install
    assert " -e " not in install
    assert " --editable" not in install
    for library in LIBRARIES:
        assert library in install
    assert '"services/${SERVICE}"' in install
    copied = {i.arguments.split()[0] for i in build if i.keyword == "COPY"}
    assert {*LIBRARIES, "services/${SERVICE}"} <= copied


def test_runtime_runs_python_m_package_as_a_non_root_user() -> None:
    for name in ("service", "sandbox"):
        runtime = stage(name)
        users = [i.arguments for i in runtime if i.keyword == "USER"]
        assert users, f"{name}: no USER"
        uid = users[-1].split(":")[0]
        assert uid not in ("0", "root"), f"{name} must not run as root"
        assert "EXPOSE 8000" in {f"{i.keyword} {i.arguments}" for i in runtime}
        healthcheck = next(i.arguments for i in runtime if i.keyword == "HEALTHCHECK")
        assert "urllib.request" in healthcheck
        assert "/health/live" in healthcheck
    runtime = stage("service")
    entrypoint = next(i.arguments for i in runtime if i.keyword == "ENTRYPOINT")
    assert 'exec python -m \\"$SERVICE_PACKAGE\\" \\"$@\\"' in entrypoint
    assert next(i.arguments for i in runtime if i.keyword == "CMD") == '["serve"]'
    env = " ".join(i.arguments for i in runtime if i.keyword == "ENV")
    assert "SERVICE_PACKAGE=${PACKAGE}" in env
    assert "${ENV_PREFIX}HOST=0.0.0.0" in env
    assert "${ENV_PREFIX}PORT=8000" in env


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_each_service_can_be_built_and_started_this_way(
    service: Service, usage_of: Callable[[Service], str]
) -> None:
    root = REPO_ROOT / "services" / service.name
    main = root / "src" / service.package / "__main__.py"
    assert main.is_file(), f"python -m {service.package} needs {main}"
    usage = usage_of(service)
    assert "serve" in usage
    if service.database:
        assert "migrate" in usage, f"{service.package} must support `migrate`"
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    local = {"storefront-kit": "libs/storefront_kit", "jwt-core-lib": "libs/jwt_core_lib"}
    for requirement in project["dependencies"]:
        name = re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0].lower()
        if name in local:
            assert local[name] in LIBRARIES


def test_every_direct_dependency_of_an_image_is_pinned() -> None:
    pins = {
        re.split(r"==", line, maxsplit=1)[0].strip().lower().replace("_", "-")
        for line in (REPO_ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    local = {"storefront-kit", "jwt-core-lib"}
    projects = [*LIBRARIES, *(f"services/{s.name}" for s in SERVICES), "sandbox"]
    unpinned = set()
    for project_dir in projects:
        project = tomllib.loads((REPO_ROOT / project_dir / "pyproject.toml").read_text())
        for requirement in project["project"]["dependencies"]:
            name = re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0].lower().replace("_", "-")
            if name not in local and name not in pins:
                unpinned.add(f"{project_dir}: {name}")
    assert not unpinned, f"pin these in constraints.txt: {sorted(unpinned)}"


def test_what_the_build_copies_is_in_the_context() -> None:
    sources = ["constraints.txt", *LIBRARIES, "sandbox"]
    sources += [f"services/{s.name}" for s in SERVICES]
    for source in sources:
        assert (REPO_ROOT / source).exists(), source
        assert not dockerignored(source), f".dockerignore drops {source}"
        assert not dockerignored(f"{source}/pyproject.toml") or source == "constraints.txt"
    for service in SERVICES:
        assert not dockerignored(f"services/{service.name}/src/{service.package}/__main__.py")
        assert not dockerignored(f"services/{service.name}/src/{service.package}/migrations/env.py")


@pytest.mark.parametrize(
    "path", [".venv/bin/python", ".stack/run/x", ".env", ".git/HEAD", "libs/x/__pycache__/a.pyc"]
)
def test_local_state_and_secrets_stay_out_of_the_context(path: str) -> None:
    assert dockerignored(path)


def test_the_ignore_matcher_is_not_vacuous() -> None:
    assert not dockerignored("libs/storefront_kit/src/storefront_kit/app.py")
    assert not dockerignored(".env.example")


def test_exec_form_instructions_are_valid_json() -> None:
    """Docker silently runs malformed exec form through a shell; keep it real JSON."""
    checked = 0
    for instruction in instructions():
        arguments = instruction.arguments
        if instruction.keyword == "HEALTHCHECK":
            arguments = arguments.partition(" CMD ")[2]
        elif instruction.keyword not in ("ENTRYPOINT", "CMD"):
            continue
        assert arguments.startswith("["), f"{instruction.keyword} should use the exec form"
        parsed = json.loads(arguments)
        assert isinstance(parsed, list)
        assert all(isinstance(part, str) for part in parsed)
        if "-c" in parsed and parsed[0] == "python":
            compile(parsed[parsed.index("-c") + 1], instruction.keyword, "exec")
        checked += 1
    assert checked >= 6
