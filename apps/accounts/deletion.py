"""Erasing an account: the user confirms with their password; then nothing of them is kept.

Apps above accounts plug in through two registries filled in their ``AppConfig.ready``: a
*blocker* says why the account cannot go yet (a team owner must hand the team over first), an
*eraser* removes what an app keeps outside this database (blobs, grants at the provider, the
Stripe customer and its subscription). The request deactivates the user, revokes every session
and queues ``accounts.account_erase``, which runs every eraser (each idempotent; a failure retries
the task) and then deletes the user row, whose cascade removes every row that belongs to them.
The audit trail keeps that an account was deleted, not whose.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from celery import current_app
from django.db import transaction
from django.utils import timezone

from apps.core.audit import AuditAction, audit_record
from apps.core.errors import ApplicationError

from .error_codes import AccountsErrorCode
from .models import TokenFamily, User

logger = logging.getLogger(__name__)

# Celery task name (tasks.py registers it): queued by name, so this module never imports the door.
ACCOUNT_ERASE_TASK = "accounts.account_erase"

DeletionBlocker = Callable[[User], str | None]  # a reason the account cannot be deleted yet, or None
# A fresh proof of sign-in other than the password (an SSO app's one-time code): spends it, True if valid.
SignInProof = Callable[[User, str], bool]
AccountEraser = Callable[[uuid.UUID], None]  # removes the user's data kept outside the database

_blockers: dict[str, DeletionBlocker] = {}
_erasers: dict[str, AccountEraser] = {}
_sign_in_proofs: dict[str, SignInProof] = {}


def register_account_deletion_blocker(name: str, blocker: DeletionBlocker) -> None:
    _blockers[name] = blocker


def register_sign_in_proof(name: str, proof: SignInProof) -> None:
    _sign_in_proofs[name] = proof


def register_account_eraser(name: str, eraser: AccountEraser) -> None:
    _erasers[name] = eraser


def account_deletion_blockers(*, user: User) -> list[str]:
    return [reason for blocker in _blockers.values() if (reason := blocker(user))]


def _signed_in_afresh(*, user: User, password: str, sign_in_code: str) -> bool:
    if password:
        return user.check_password(password)
    return bool(sign_in_code) and any(proof(user, sign_in_code) for proof in _sign_in_proofs.values())


def account_delete_request(*, user: User, password: str = "", sign_in_code: str = "") -> None:
    """Check the password (or, for an account without one, a fresh SSO sign-in code) and the
    blockers, close the account now and queue its erasure."""
    if not _signed_in_afresh(user=user, password=password, sign_in_code=sign_in_code):
        field = "password" if password else "sso_code"
        raise ApplicationError(
            AccountsErrorCode.INVALID_CREDENTIALS,
            "The password or sign-in code is not correct; the account was not deleted.",
            status=403,
            fields={field: ["Not correct."]},
        )
    reasons = account_deletion_blockers(user=user)
    if reasons:
        raise ApplicationError(
            AccountsErrorCode.ACCOUNT_DELETION_BLOCKED,
            "The account cannot be deleted yet: " + " ".join(reasons),
            status=409,
            extra={"reasons": reasons},
        )
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        locked.is_active = False
        locked.save(update_fields=["is_active"])  # the devices app closes the user's sockets on this
        TokenFamily.objects.filter(user=locked, revoked_at__isnull=True).update(
            revoked_at=timezone.now(), revoked_reason="account_deleted", updated_at=timezone.now()
        )
        audit_record(action=AuditAction.ACCOUNT_DELETION_REQUESTED, actor=None)
        user_id = str(locked.pk)
        transaction.on_commit(lambda: _enqueue_erase(user_id))


def _enqueue_erase(user_id: str) -> None:
    current_app.signature(ACCOUNT_ERASE_TASK, args=[user_id]).delay()


def account_erase(*, user_id: uuid.UUID | str) -> bool:
    """Run every eraser, then delete the user row (and by cascade every row of theirs).
    Returns False when the user is already gone. An eraser's exception propagates (the task retries)."""
    user = User.objects.filter(pk=user_id, is_active=False).first()
    if user is None:
        return False
    for name, eraser in _erasers.items():
        logger.info("account erase: %s", name)
        eraser(user.pk)
    with transaction.atomic():
        User.objects.filter(pk=user.pk).delete()
        audit_record(action=AuditAction.ACCOUNT_ERASED, actor=None)
    return True
