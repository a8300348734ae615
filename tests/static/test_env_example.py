""".env.example documents every setting the platform reads, and nothing else.

The names come from the settings classes themselves: ``PlatformSettings``
(``STOREFRONT_``), each service's ``ServiceSettings`` subclass (found in
``<package>.settings`` for every service in ``storefront_stack.topology``) and the
sandboxes' settings. A field maps to ``<env_prefix><FIELD NAME>`` upper-cased, except a
nested settings object (``platform``), which is read under its own prefix. On top of
those, the runner's variables and the ones ``docker-compose.yml`` interpolates are allowed.

When a settings field is added, the failure message prints the lines to paste.
"""

import importlib
import inspect
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from pydantic import AliasChoices, AliasPath, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from storefront_kit.settings import PLACEHOLDER_SECRETS, PlatformSettings, ServiceSettings
from storefront_sandbox.settings import SandboxSettings
from storefront_stack.topology import SERVICES

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = REPO_ROOT / ".env.example"
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"

# Read by the local runner and the test harness (scripts/stack), not by a settings class.
RUNNER_VARIABLES = frozenset(
    {
        "DATABASE_URL",
        "REDIS_URL",
        "REDIS_CLUSTER_URL",
        "ELASTICSEARCH_URL",
        "GATEWAY_AUTH_RATE",
        "GATEWAY_AUTH_BURST",
        "GATEWAY_SEARCH_RATE",
        "GATEWAY_SEARCH_BURST",
        # Processes per service the runner starts (docs/design.md §8).
        *(f"{s.env_prefix}REPLICAS" for s in SERVICES),
        # Databases the runner splits orders' users over (docs/orders.md, "Shards").
        "ORDERS_DATABASES",
    }
)
# Read by docker-compose.yml itself (interpolation); every other `${VAR}` it uses is
# found in the file and must be documented too.
COMPOSE_VARIABLES = frozenset({"POSTGRES_PASSWORD"})
SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|(^|_)KEYS?|_TOKEN)$")
# `NAME=value`, or `# NAME=value` for a variable documented but left unset on purpose.
VARIABLE_LINE = re.compile(r"^(?P<unset>#\s*)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")
COMPOSE_INTERPOLATION = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Setting:
    """One environment variable a settings class reads."""

    name: str
    owner: type[BaseSettings]
    field: str
    info: FieldInfo


@dataclass(frozen=True)
class Line:
    """One variable line of .env.example."""

    number: int
    name: str
    value: str
    unset: bool
    comment: str | None


# --- where the names come from ---------------------------------------------------------


def service_settings_classes() -> list[type[ServiceSettings]]:
    """The settings class of every service, found in ``<package>.settings``."""
    classes = []
    for service in SERVICES:
        module = importlib.import_module(f"{service.package}.settings")
        found = [
            cls
            for cls in vars(module).values()
            if inspect.isclass(cls)
            and issubclass(cls, ServiceSettings)
            and cls.__module__ == module.__name__
        ]
        assert len(found) == 1, f"{module.__name__} must define one ServiceSettings subclass"
        assert found[0].model_config.get("env_prefix") == service.env_prefix, (
            f"{found[0].__name__} must read {service.env_prefix}* variables"
        )
        classes.append(found[0])
    return classes


def settings_classes() -> list[type[BaseSettings]]:
    return [PlatformSettings, *service_settings_classes(), SandboxSettings]


def _is_nested_settings(info: FieldInfo) -> bool:
    return inspect.isclass(info.annotation) and issubclass(info.annotation, BaseSettings)


def _env_names(cls: type[BaseSettings], field: str, info: FieldInfo) -> list[str]:
    """What pydantic-settings reads ``field`` from (case-insensitive: upper-cased)."""
    alias = info.validation_alias or info.alias
    if isinstance(alias, str):
        return [alias.upper()]
    if isinstance(alias, AliasChoices):
        return [
            (choice if isinstance(choice, str) else str(choice.path[0])).upper()
            for choice in alias.choices
        ]
    if isinstance(alias, AliasPath):
        return [str(alias.path[0]).upper()]
    return [(str(cls.model_config.get("env_prefix", "")) + field).upper()]


def settings() -> dict[str, Setting]:
    """Every environment variable a settings class reads, by name."""
    found: dict[str, Setting] = {}
    for cls in settings_classes():
        for field, info in cls.model_fields.items():
            if _is_nested_settings(info):
                continue  # e.g. ``platform``: PlatformSettings reads STOREFRONT_*
            for name in _env_names(cls, field, info):
                found.setdefault(name, Setting(name, cls, field, info))
    return found


@cache
def compose_variables() -> frozenset[str]:
    """Variables docker-compose.yml interpolates (``${NAME}``, ``${NAME:?...}``...)."""
    text = COMPOSE_FILE.read_text()
    return frozenset(match["name"] for match in COMPOSE_INTERPOLATION.finditer(text))


def allowed_extra_variables() -> frozenset[str]:
    return RUNNER_VARIABLES | COMPOSE_VARIABLES | compose_variables()


# --- reading .env.example --------------------------------------------------------------


def env_example_lines() -> list[Line]:
    lines = ENV_EXAMPLE.read_text().splitlines()
    found = []
    for index, text in enumerate(lines):
        match = VARIABLE_LINE.match(text)
        if not match:
            continue
        above = lines[index - 1] if index else ""
        comment = (
            above.lstrip("#").strip()
            if above.startswith("#") and not VARIABLE_LINE.match(above)
            else None
        )
        found.append(
            Line(
                number=index + 1,
                name=match["name"],
                value=_unquote(match["value"].strip()),
                unset=bool(match["unset"]),
                comment=comment,
            )
        )
    return found


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def documented() -> set[str]:
    return {line.name for line in env_example_lines()}


# --- what to tell whoever adds a setting -------------------------------------------------


def _description(setting: Setting) -> str:
    """The field's description, or the ``#:`` comment above it in the source."""
    if setting.info.description:
        return setting.info.description
    for cls in setting.owner.__mro__:
        if setting.field not in getattr(cls, "__annotations__", {}):
            continue
        source = inspect.getsource(cls).splitlines()
        for index, text in enumerate(source):
            if re.match(rf"\s+{setting.field}\s*:", text):
                comments: list[str] = []
                while index > 0 and source[index - 1].strip().startswith("#:"):
                    index -= 1
                    comments.insert(0, source[index].strip()[2:].strip())
                if comments:
                    return " ".join(comments)
        break
    return f"What {setting.owner.__name__}.{setting.field} does (one line)."


def _example_value(setting: Setting) -> str:
    info = setting.info
    if info.default is PydanticUndefined or info.default is None:
        return ""
    if info.annotation is SecretStr or SECRET_NAME.search(setting.name):
        return "changeme"
    default = info.default
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, list | dict):
        return "'" + json.dumps(default, separators=(",", ":")) + "'"
    return str(default)


def suggested_lines(names: Iterator[str] | set[str]) -> str:
    known = settings()
    blocks = []
    for name in sorted(names):
        setting = known[name]
        line = f"{name}={_example_value(setting)}"
        if setting.info.default is None or setting.info.default_factory is not None:
            line = "# " + line  # no fixed default: document it, leave it unset
        blocks.append(f"# {_description(setting)}\n{line}")
    return "\n".join(blocks)


# --- the tests ---------------------------------------------------------------------------


def test_every_setting_is_documented_in_env_example() -> None:
    missing = set(settings()) - documented()
    assert not missing, (
        f".env.example lacks {len(missing)} setting(s): {', '.join(sorted(missing))}.\n"
        "Add them under their prefix's section, each with a one-line comment, e.g.:\n\n"
        + suggested_lines(missing)
    )


def test_env_example_names_nothing_unknown() -> None:
    unknown = documented() - set(settings()) - allowed_extra_variables()
    assert not unknown, (
        f".env.example names variables nothing reads: {', '.join(sorted(unknown))}. "
        "Remove them, or add the setting they belong to (runner and compose variables "
        "are listed in tests/static/test_env_example.py)."
    )


def test_every_variable_compose_interpolates_is_documented() -> None:
    missing = compose_variables() - documented()
    assert not missing, f"docker-compose.yml reads {sorted(missing)}: document them"
    assert compose_variables() >= COMPOSE_VARIABLES


def test_runner_variables_are_documented() -> None:
    assert RUNNER_VARIABLES - documented() == set()


def test_each_variable_appears_once_under_a_one_line_comment() -> None:
    seen: dict[str, int] = {}
    for line in env_example_lines():
        assert line.name not in seen, (
            f".env.example:{line.number}: {line.name} again (first on line {seen[line.name]})"
        )
        seen[line.name] = line.number
        assert line.comment, f".env.example:{line.number}: {line.name} needs a comment above"


def test_variables_are_grouped_by_prefix() -> None:
    prefixes = sorted(
        {str(cls.model_config.get("env_prefix", "")) for cls in settings_classes()},
        key=len,
        reverse=True,
    )

    def group(name: str) -> str:
        return next((prefix for prefix in prefixes if name.startswith(prefix)), "")

    order = [group(line.name) for line in env_example_lines()]
    runs = [g for index, g in enumerate(order) if index == 0 or order[index - 1] != g]
    repeated = {g or "runner/compose" for g in runs if runs.count(g) > 1}
    assert not repeated, f".env.example splits these groups: {sorted(repeated)}"


def test_secrets_are_placeholders_never_real_values() -> None:
    """Secrets hold values the services refuse outside development."""
    known = settings()
    for line in env_example_lines():
        setting = known.get(line.name)
        is_secret = SECRET_NAME.search(line.name) or (
            setting is not None and setting.info.annotation in (SecretStr, SecretStr | None)
        )
        if is_secret:
            assert line.value.strip().lower() in PLACEHOLDER_SECRETS, (
                f".env.example:{line.number}: {line.name} must be a placeholder like 'changeme'"
            )
    text = ENV_EXAMPLE.read_text()
    assert "PRIVATE KEY-----" not in text, "no key material in .env.example"


def test_fields_without_a_fixed_default_are_left_unset() -> None:
    """A per-process default (instance ids) must not be pinned by copying the example."""
    known = settings()
    for line in env_example_lines():
        setting = known.get(line.name)
        if setting is not None and setting.info.default_factory is not None:
            assert line.unset, f".env.example:{line.number}: leave {line.name} commented out"


def test_settings_accept_every_value_in_env_example(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Copying .env.example to .env gives settings every service can start with."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in settings():
        monkeypatch.delenv(name, raising=False)
    platform = PlatformSettings(_env_file=ENV_EXAMPLE)
    for cls in service_settings_classes():
        cls(_env_file=ENV_EXAMPLE, platform=platform)
    SandboxSettings(_env_file=ENV_EXAMPLE)


def test_the_check_names_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop a line from a copy: the suggestion names it, with its comment and default."""
    trimmed = tmp_path / ".env.example"
    kept = [
        text
        for text in ENV_EXAMPLE.read_text().splitlines()
        if not text.startswith("INVENTORY_PORT=")
    ]
    trimmed.write_text("\n".join(kept) + "\n")
    monkeypatch.setattr(sys.modules[__name__], "ENV_EXAMPLE", trimmed)
    missing = set(settings()) - documented()
    assert missing == {"INVENTORY_PORT"}
    assert "INVENTORY_PORT=8103" in suggested_lines(missing)


def test_values_shown_are_the_defaults() -> None:
    """The header promises "values shown are the defaults": a changed default shows here."""
    known = settings()
    stale = []
    for line in env_example_lines():
        setting = known.get(line.name)
        if setting is None or line.unset:
            continue
        expected = _example_value(setting)
        if expected != "changeme" and _unquote(expected) != line.value:
            stale.append(f"{line.name}={line.value} (the code's default: {expected})")
    assert not stale, ".env.example shows values that are not the defaults:\n" + "\n".join(stale)
