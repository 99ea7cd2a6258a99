"""The compliance tables: a tenant's policy, its users' consents, and the erasures asked for.

:class:`CompliancePolicy` is one row per tenant (absent: the defaults, keep everything and the global
retention); :class:`UserConsent` is one row per user and purpose; :class:`ErasureRequest` is an erasure
of one user or of the whole tenant, pending during the soft-delete window, then done (with its
report of what was removed; the erased user's id is kept only as a keyed hash).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from agentadapter.store.models import Base, utcnow

__all__ = ["ERASURE_STATUSES", "CompliancePolicy", "ErasureRequest", "UserConsent"]

ERASURE_STATUSES = ("pending", "done", "cancelled")


class CompliancePolicy(Base):
    """A tenant's anonymization, retention, external-provider and consent settings."""

    __tablename__ = "compliance_policies"

    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    pii_mode: Mapped[str] = mapped_column(sa.String(8), default="keep")
    """``keep``, ``mask`` or ``hash``: what stored run data's personal data becomes."""
    detectors: Mapped[list[str]] = mapped_column(default=list)
    phone_region: Mapped[str | None] = mapped_column(sa.String(2))
    hash_key: Mapped[str] = mapped_column(sa.String(64))
    """The tenant's key for ``hash`` (random, never returned)."""
    retention_days: Mapped[float | None] = mapped_column(sa.Float)
    """Overrides the server's AGENTADAPTER_RETENTION_DAYS for this tenant; None: the server's."""
    external_providers: Mapped[list[str]] = mapped_column(default=list)
    """Providers whose calls get personal data replaced by placeholders (restored in the answer)."""
    required_consents: Mapped[list[str]] = mapped_column(default=list)
    """Consents a user must have given before a run of theirs starts."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class UserConsent(Base):
    """Whether a user agreed to one purpose of processing, and where that answer came from."""

    __tablename__ = "user_consents"
    __table_args__ = (sa.UniqueConstraint("user_id", "purpose"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(sa.String(64))
    granted: Mapped[bool] = mapped_column(default=False)
    source: Mapped[str] = mapped_column(sa.String(16), default="api")
    """``api`` (recorded through the API or the CLI) or ``hook`` (the operator's consent service)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ErasureRequest(Base):
    """An erasure of a user's data (or the whole tenant's), carried out once ``execute_after`` has passed."""

    __tablename__ = "erasure_requests"
    __table_args__ = (sa.Index(None, "status", "execute_after"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(sa.String(8))
    """``user`` or ``tenant``."""
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    """The user to erase while pending; None once done (the row then keeps ``subject_hash`` only)."""
    subject_hash: Mapped[str | None] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(
        sa.Enum(*ERASURE_STATUSES, name="erasure_status", native_enum=False, create_constraint=True, length=16),
        default="pending",
    )
    requested_by: Mapped[str | None] = mapped_column(sa.String(100))
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    execute_after: Mapped[datetime] = mapped_column()
    executed_at: Mapped[datetime | None] = mapped_column()
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
