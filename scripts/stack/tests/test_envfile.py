"""``make env``: a .env with fresh secrets, written once, read back by every reader."""

import builtins
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from dotenv import dotenv_values

from jwt_core_lib import SigningKey
from storefront_kit.encryption import TamperedValue
from storefront_kit.settings import PLACEHOLDER_SECRETS, FieldEncryptionSettingsMixin
from storefront_stack import envfile
from storefront_stack.topology import CALLERS, FIELD_ENCRYPTION, SERVICES

REPO_ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = REPO_ROOT / ".env.example"


def test_make_env_writes_fresh_secrets_that_every_reader_understands(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    assert envfile.write_env(target, EXAMPLE)
    assert target.stat().st_mode & 0o777 == 0o600
    values = dotenv_values(target)  # python-dotenv: what pydantic-settings reads
    for secret in envfile.SECRETS:
        value = values[secret.name]
        assert value, secret.name
        assert value.lower() not in PLACEHOLDER_SECRETS, secret.name
    keys = {
        s.name: SigningKey.from_pem(values[f"{s.env_prefix}SERVICE_TOKEN_KEY"] or "")
        for s in SERVICES
    }  # a real Ed25519 private key per service
    signing = SigningKey.from_pem(values["AUTH_JWT_SIGNING_KEY"] or "")
    assert len({k.x for k in keys.values()} | {signing.x}) == len(SERVICES) + 1
    # Each callee lists exactly its callers' public keys, and no key of its own.
    for callee, callers in CALLERS.items():
        listed = json.loads(
            values[f"{callee.upper().replace('-', '_')}_SERVICE_TOKEN_CALLERS"] or ""
        )
        assert listed == {caller: [keys[caller].x] for caller in callers}
    assert str(values["POSTGRES_PASSWORD"]).isalnum()  # goes into database URLs as is
    # Each service that encrypts personal fields gets keys its settings accept (not the
    # development stand-in: what they seal, the stand-in cannot open).
    for name in FIELD_ENCRYPTION:
        service = next(s for s in SERVICES if s.name == name)
        module = importlib.import_module(f"{service.package}.settings")
        settings_class = next(
            cls
            for cls in vars(module).values()
            if isinstance(cls, type)
            and issubclass(cls, FieldEncryptionSettingsMixin)
            and cls.__module__ == module.__name__
        )
        prefix = service.env_prefix
        cipher, _ = settings_class(
            encryption_keys=values[f"{prefix}ENCRYPTION_KEYS"],
            encryption_key_id=values[f"{prefix}ENCRYPTION_KEY_ID"],
            blind_index_key=values[f"{prefix}BLIND_INDEX_KEY"],
        ).field_crypto()
        stand_in, _ = settings_class(
            encryption_keys="changeme", blind_index_key="changeme"
        ).field_crypto()
        token = cipher.encrypt(b"+15550000001", context="c")
        with pytest.raises(TamperedValue):
            stand_in.decrypt(token, context="c")
    # Everything else is .env.example's documented defaults.
    assert values["STOREFRONT_ENVIRONMENT"] == "development"
    assert placeholder_free(target)


def placeholder_free(target: Path) -> bool:
    return envfile.placeholder_secrets(target.read_text()) == []


def test_two_runs_never_share_a_secret(tmp_path: Path) -> None:
    first, second = tmp_path / "a.env", tmp_path / "b.env"
    envfile.write_env(first, EXAMPLE)
    envfile.write_env(second, EXAMPLE)
    a, b = dotenv_values(first), dotenv_values(second)
    assert all(a[s.name] != b[s.name] for s in envfile.SECRETS)


def test_an_existing_env_is_never_overwritten(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    target.write_text("POSTGRES_PASSWORD=in-use\n")
    assert not envfile.write_env(target, EXAMPLE)
    assert target.read_text() == "POSTGRES_PASSWORD=in-use\n"


def test_make_env_names_placeholders_left_in_an_existing_env(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    target.write_text(EXAMPLE.read_text())
    result = subprocess.run(
        [sys.executable, envfile.__file__, "--output", str(target)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert result.returncode == 1
    assert "AUTH_JWT_SIGNING_KEY" in result.stderr
    assert target.read_text() == EXAMPLE.read_text()


def test_the_make_target_runs_without_the_virtualenv(tmp_path: Path) -> None:
    """A fresh clone has no .venv: the script needs the standard library only."""
    target = tmp_path / ".env"
    result = subprocess.run(
        ["python3", "-I", envfile.__file__, "--output", str(target), "--example", str(EXAMPLE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert placeholder_free(target)


def test_without_cryptography_keys_come_from_openssl(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_cryptography(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("cryptography"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cryptography)
    pem = envfile.ed25519_pem()
    public = envfile.ed25519_public_b64url(pem)
    monkeypatch.undo()
    SigningKey.from_pem(pem)
    assert public == envfile.ed25519_public_b64url(pem)  # same as cryptography derives
    assert len(public) == 43


def test_a_derived_secret_sees_the_ones_before_it() -> None:
    """How per-service caller allowlists (public keys of other rows) will be added."""
    table = (
        envfile.Secret("A_KEY", lambda _: envfile.ed25519_pem(), "a key"),
        envfile.Secret(
            "B_CALLERS", lambda done: envfile.ed25519_public_b64url(done["A_KEY"]), "derived"
        ),
    )
    values = envfile.generate_secrets(table)
    assert values["B_CALLERS"] == envfile.ed25519_public_b64url(values["A_KEY"])
    rendered = envfile.render_env("# doc\nA_KEY=changeme\n", values)
    assert "A_KEY=changeme" not in rendered
    assert "B_CALLERS=" in rendered  # rows .env.example lacks are appended
