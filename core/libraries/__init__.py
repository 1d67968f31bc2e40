"""Reference libraries: named sets of images (with optional labels) the score machines draw from.

Use :class:`LibraryManager`::

    manager = LibraryManager()
    manager.list()                                   # built-ins first, then user libraries
    report = manager.create_from_zip("shoes", data)  # ImportReport: added, skipped, notices
    batch = manager.load("digits", size=32)          # LibraryTensor (N, C, 32, 32) in [-1, 1]
"""

from core.libraries.builtins import BUILTIN_LIBRARIES, BuiltinLibrary
from core.libraries.manager import LibraryManager
from core.libraries.names import suggest_name, validate_name
from core.libraries.records import ImportReport, LibraryInfo, LibraryPixels, LibraryTensor
from core.libraries.sources import MAX_IMPORT_BYTES, MAX_IMPORT_FILES

__all__ = [
    "BUILTIN_LIBRARIES",
    "MAX_IMPORT_BYTES",
    "MAX_IMPORT_FILES",
    "BuiltinLibrary",
    "ImportReport",
    "LibraryInfo",
    "LibraryManager",
    "LibraryPixels",
    "LibraryTensor",
    "suggest_name",
    "validate_name",
]
