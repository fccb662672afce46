"""REST endpoints of storage, a module per concern: records, vectors, backups and multipart backups."""
