"""Persistence of generations: SQLAlchemy records plus PNG files in the data directory."""

from core.store.models import GenerationRecord
from core.store.store import Store

__all__ = ["GenerationRecord", "Store"]
