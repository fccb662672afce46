"""The size of every stored embedding: memory's vector columns and the storage vector items share it.

Changing it is a migration of those columns; ``ASSISTANT_EMBEDDING_DIMENSIONS`` must agree with it
(a system check of the assistant app says so at startup).
"""

from typing import Final

EMBEDDING_DIMENSIONS: Final = 1536
