"""Per-user memory (core, associative, episodic, proactive); every content column is ciphertext.

Content is encrypted with the owner's Fernet key (``apps.accounts.keys``), which is itself
wrapped by the server master keys, so a database dump alone opens nothing. Embeddings are
stored as plain vectors because similarity search needs them; lookups that need equality on
a secret (the core-memory key, a pattern's text) use an HMAC keyed per user instead.
"""

from __future__ import annotations

from enum import StrEnum

from django.conf import settings
from django.db import models
from django.db.models.functions import Cast
from pgvector.django import BitField, VectorField

from apps.accounts.models import User
from apps.core.models import BaseModel
from apps.core.vectors import EMBEDDING_DIMENSIONS

PATTERN_CONFIDENCE_THRESHOLD = 0.6


class MemoryKind(StrEnum):
    """The four kinds of memory, as named in URLs and exports."""

    CORE = "core"
    ASSOCIATIVE = "associative"
    EPISODIC = "episodic"
    PROACTIVE = "proactive"


class MemoryKey(models.Model):
    """The user's HMAC key for memory lookups, itself encrypted with the user's Fernet key."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="memory_key"
    )
    hmac_key_encrypted = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    # When proactive patterns were last derived from this user's episodes (``learning.py``).
    patterns_derived_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"memory key of {self.user_id}"


class CoreMemory(BaseModel):
    """A preference the assistant always knows (``timezone → Europe/Paris``)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="core_memories")
    # HMAC-SHA256 of the key under the user's memory HMAC key: uniqueness without the plaintext.
    key_digest = models.BinaryField(max_length=32)
    key_encrypted = models.BinaryField()
    value_encrypted = models.BinaryField()

    class Meta(BaseModel.Meta):
        verbose_name_plural = "core memories"
        constraints = [
            models.UniqueConstraint(fields=["user", "key_digest"], name="memory_core_unique_key_per_user"),
        ]
        # The list, newest first: a page reads its own rows by index, not every row.
        indexes = [models.Index(fields=["user", "-created_at"], name="memory_core_user_created")]

    def __str__(self) -> str:
        return f"core memory {self.id}"


class AssociativeMemory(BaseModel):
    """A fact recalled by similarity, optionally linked to a device entity (task, note…)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="associative_memories")
    content_encrypted = models.BinaryField()
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS)
    entity_type_encrypted = models.BinaryField(null=True, blank=True)
    entity_id_encrypted = models.BinaryField(null=True, blank=True)
    # Per-user HMAC of the normalised content of a learned memory: learning the same thing again
    # reinforces the row (fresh ``updated_at``) instead of adding a duplicate. Null for memories
    # added directly (the tool, imports).
    content_digest = models.BinaryField(max_length=32, null=True, blank=True)
    # One sign bit per dimension (192 bytes), computed by PostgreSQL on every write of
    # ``embedding``: the first pass of the search ranks the owner's rows by Hamming distance on
    # these, read from the covering index below, and only a shortlist is re-ranked exactly.
    embedding_bits = models.GeneratedField(
        expression=Cast(
            models.Func(models.F("embedding"), function="binary_quantize"),
            output_field=BitField(length=EMBEDDING_DIMENSIONS),
        ),
        output_field=BitField(length=EMBEDDING_DIMENSIONS),
        db_persist=True,
    )

    class Meta(BaseModel.Meta):
        verbose_name_plural = "associative memories"
        indexes = [
            # The owner's bits side by side (about 275 bytes per memory): the first pass is
            # an index-only scan that never touches the 8 KB heap pages (``selectors.py``).
            models.Index(fields=["user"], include=["embedding_bits", "id"], name="memory_assoc_user_bits"),
            models.Index(fields=["user", "-created_at"], name="memory_assoc_user_created"),
            # Eviction order: least recently reinforced first (``retention.py``).
            models.Index(fields=["user", "updated_at"], name="memory_assoc_user_updated"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["user", "content_digest"], name="memory_assoc_unique_learned"),
        ]

    def __str__(self) -> str:
        return f"associative memory {self.id}"


class Episode(BaseModel):
    """A summary of one agent interaction; ``session_id`` is an opaque id, not content.

    A turn is stored at once with its exchange (encrypted) and no summary; a Celery task writes the
    summary (the subagent model's) and its embedding, then drops the exchange. Until then the
    episode is "pending" and not shown to the model; a failed summary is retried.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memory_episodes")
    session_id = models.CharField(max_length=128)
    summary_encrypted = models.BinaryField(null=True, blank=True)
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True, blank=True)
    exchange_encrypted = models.BinaryField(null=True, blank=True)
    summary_attempts = models.PositiveSmallIntegerField(default=0)
    summarised_at = models.DateTimeField(null=True, blank=True)

    class Meta(BaseModel.Meta):
        indexes = [models.Index(fields=["user", "-created_at"], name="memory_episode_user_created")]

    def __str__(self) -> str:
        return f"episode {self.id}"


class ProactivePattern(BaseModel):
    """A habit the assistant noticed; only patterns above the confidence threshold are used."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memory_patterns")
    description_digest = models.BinaryField(max_length=32)
    description_encrypted = models.BinaryField()
    confidence = models.FloatField()

    class Meta(BaseModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["user", "description_digest"], name="memory_pattern_unique_per_user"),
            models.CheckConstraint(
                condition=models.Q(confidence__gte=0.0) & models.Q(confidence__lte=1.0),
                name="memory_pattern_confidence_0_1",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "-confidence"], name="memory_pattern_user_conf"),
            # The list, newest first: a page reads its own rows by index, not every row.
            models.Index(fields=["user", "-created_at"], name="memory_pattern_user_created"),
        ]

    def __str__(self) -> str:
        return f"pattern {self.id}"


class MemoryTally(models.Model):
    """How many items of one kind a user has: what the memory list's count, the counts and the caps
    read instead of counting the kind's rows. PostgreSQL's triggers keep it in the writing
    transaction (``apps.core.tallies``, migration 0009); nothing else writes it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=[(kind.value, kind.value) for kind in MemoryKind])
    items = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "kind"], name="memory_tally_user_kind_unique")]

    def __str__(self) -> str:
        return f"{self.kind}: {self.items}"


MemoryModel = CoreMemory | AssociativeMemory | Episode | ProactivePattern

MODEL_OF_KIND: dict[MemoryKind, type[MemoryModel]] = {
    MemoryKind.CORE: CoreMemory,
    MemoryKind.ASSOCIATIVE: AssociativeMemory,
    MemoryKind.EPISODIC: Episode,
    MemoryKind.PROACTIVE: ProactivePattern,
}

# Columns that only search reads (the full vector and its sign bits): left out of listings,
# exports without vectors and the admin.
VECTOR_FIELDS: dict[MemoryKind, tuple[str, ...]] = {
    MemoryKind.ASSOCIATIVE: ("embedding", "embedding_bits"),
    MemoryKind.EPISODIC: ("embedding",),
}


class MemoryOwner(User):
    """A user seen from the memory admin: counts only, never content."""

    class Meta:
        proxy = True
        verbose_name = "memory owner"
