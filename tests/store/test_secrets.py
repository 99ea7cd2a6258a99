"""``SecretBox`` (Fernet / MultiFernet under AGENTADAPTER_SECRET_KEY) and the provider-key repository."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken

from agentadapter.observability.logging import MASK, get_logger
from agentadapter.store import provider_keys, tenants
from agentadapter.store.database import Database
from agentadapter.store.errors import RecordConflict, RecordNotFound
from agentadapter.store.models import Tenant
from agentadapter.store.secrets import SecretBox, SecretKeyError, fernet_key, generate_key
from store.databases import migrated_sqlite, unique

OPENAI_KEY = "sk-test-tenant-key-0123456789abcdef"


def test_the_newest_key_encrypts_and_every_key_decrypts() -> None:
    old, new = generate_key(), generate_key()
    token = SecretBox([old]).encrypt("sk-secret-value-1")
    both = SecretBox.from_setting(f"{new}, {old}")
    assert both.key_count == 2
    assert both.decrypt(token) == "sk-secret-value-1"
    fresh = both.encrypt("sk-secret-value-2")
    assert Fernet(new).decrypt(fresh.encode()) == b"sk-secret-value-2"  # the first key encrypted it
    with pytest.raises(InvalidToken):
        Fernet(old).decrypt(fresh.encode())
    rotated = both.rotate(token)
    assert SecretBox([new]).decrypt(rotated) == "sk-secret-value-1"  # the old key is no longer needed


def test_a_token_no_key_opens_names_the_fix() -> None:
    token = SecretBox([generate_key()]).encrypt("sk-secret-value-1")
    with pytest.raises(SecretKeyError, match=r"Put the old key back after the new one.*secrets reencrypt") as caught:
        SecretBox([generate_key()]).decrypt(token)
    assert "sk-secret-value-1" not in str(caught.value)
    with pytest.raises(SecretKeyError, match="secrets reencrypt"):
        SecretBox([generate_key()]).rotate(token)


def test_a_passphrase_is_stretched_into_a_fernet_key_the_same_way_every_time() -> None:
    key = fernet_key("development-only-secret")
    assert len(base64.urlsafe_b64decode(key)) == 32 and key == fernet_key("development-only-secret")
    assert key != fernet_key("another-passphrase")
    generated = generate_key()
    assert fernet_key(generated) == generated.encode()  # a Fernet key is used as it is
    token = SecretBox.from_setting("development-only-secret").encrypt("sk-secret-value-1")
    assert SecretBox.from_setting("development-only-secret").decrypt(token) == "sk-secret-value-1"
    with pytest.raises(SecretKeyError, match="secrets generate"):
        SecretBox.from_setting(" , ")


def test_a_decrypted_value_is_redacted_from_logs(caplog: pytest.LogCaptureFixture) -> None:
    box = SecretBox([generate_key()])
    token = box.encrypt("sk-registered-when-decrypted")
    box.decrypt(token)
    with caplog.at_level(logging.INFO, logger="agentadapter"):
        get_logger("agentadapter.test").info("calling with %s", "sk-registered-when-decrypted")
    assert "sk-registered-when-decrypted" not in caplog.text and MASK in caplog.text


async def test_keys_are_stored_encrypted_per_tenant(db: Database, tenant: Tenant, other_tenant: Tenant) -> None:
    box = SecretBox([generate_key()])
    async with db.writer() as session:
        row = await provider_keys.create_provider_key(session, tenant.id, box, provider="openai", key=OPENAI_KEY)
        await provider_keys.create_provider_key(session, tenant.id, box, provider="openai", name="batch",
                                                key="sk-second-openai-key-xyz9")
        await provider_keys.create_provider_key(session, tenant.id, box, provider="claude", key="sk-ant-abcdefgh1234")
    assert row.hint == "cdef" and OPENAI_KEY not in row.ciphertext and row.provider == "openai"
    async with db.writer() as session:
        with pytest.raises(RecordConflict, match="rotate it"):
            await provider_keys.create_provider_key(session, tenant.id, box, provider="openai", key=OPENAI_KEY)
    async with db.session() as session:
        environ = await provider_keys.tenant_environ(session, box, tenant.id)
        assert environ == {"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": "sk-ant-abcdefgh1234"}  # default wins
        assert await provider_keys.tenant_environ(session, box, other_tenant.id) == {}
        with pytest.raises(RecordNotFound):
            await provider_keys.get_provider_key(session, other_tenant.id, row.id)
        listed = await provider_keys.list_provider_keys(session, tenant.id, limit=2)
        assert len(listed.items) == 2 and listed.has_more
        assert await provider_keys.providers_with_keys(session, tenant.id) == {"openai", "anthropic"}
    async with db.writer() as session:
        rotated = await provider_keys.rotate_provider_key(session, tenant.id, row.id, box, "sk-rotated-key-00007777\n")
        assert rotated.hint == "7777" and rotated.rotated_at is not None
    async with db.session() as session:
        assert (await provider_keys.tenant_environ(session, box, tenant.id))["OPENAI_API_KEY"] == "sk-rotated-key-00007777"


async def test_the_provider_and_the_key_are_checked(db: Database, tenant: Tenant) -> None:
    box = SecretBox([generate_key()])
    async with db.writer() as session:
        for provider in ("ollama-typo", "test", "local"):
            with pytest.raises(provider_keys.InvalidProviderKey, match="openai") as caught:
                await provider_keys.create_provider_key(session, tenant.id, box, provider=provider, key=OPENAI_KEY)
            assert caught.value.param == "provider"
        with pytest.raises(provider_keys.InvalidProviderKey, match="at least 8") as short:
            await provider_keys.create_provider_key(session, tenant.id, box, provider="openai", key="sk-1")
        assert short.value.param == "key"
    assert "anthropic" in provider_keys.keyed_providers() and "test" not in provider_keys.keyed_providers()


@pytest.fixture
async def own_db(tmp_path: Path, template_dir: Path) -> AsyncIterator[Database]:
    """A database of this test's alone (the session's PostgreSQL holds other tests' keys, under other secrets)."""
    database = Database(migrated_sqlite(tmp_path, template_dir))
    yield database
    await database.dispose()


async def test_reencrypt_moves_every_key_to_the_newest_secret(own_db: Database) -> None:
    db = own_db
    async with db.writer() as session:
        tenant = await tenants.create_tenant(session, unique("tenant"))
        other_tenant = await tenants.create_tenant(session, unique("other"))
    old, new = generate_key(), generate_key()
    async with db.writer() as session:
        for owner in (tenant, other_tenant):
            await provider_keys.create_provider_key(session, owner.id, SecretBox([old]), provider="openai",
                                                    key=OPENAI_KEY)
    async with db.session() as session:
        with pytest.raises(SecretKeyError, match="Put the old key back"):
            await provider_keys.tenant_environ(session, SecretBox([new]), tenant.id)
        before = await provider_keys.get_provider_key(
            session, tenant.id, (await provider_keys.list_provider_keys(session, tenant.id)).items[0].id)
    async with db.writer() as session:
        assert await provider_keys.reencrypt_all(session, SecretBox([new, old]), batch=1) == 2
    async with db.session() as session:
        for owner in (tenant, other_tenant):
            assert await provider_keys.tenant_environ(session, SecretBox([new]), owner.id) == {
                "OPENAI_API_KEY": OPENAI_KEY}
        after = await provider_keys.get_provider_key(session, tenant.id, before.id)
        assert after.ciphertext != before.ciphertext and after.updated_at == before.updated_at
    async with db.writer() as session:  # a key no secret opens stops the whole re-encryption
        with pytest.raises(SecretKeyError):
            await provider_keys.reencrypt_all(session, SecretBox([generate_key()]))
