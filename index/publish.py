"""Publishing a finished index version: checksums into its manifest, the staging directory
renamed into place, the version loaded once to prove it works, and only then ``CURRENT``
pointed at it (a version that does not load is removed and ``CURRENT`` left as it was).
"""

from __future__ import annotations

from pathlib import Path

from gaitsearch.index import versions
from gaitsearch.index.loaded_index import load_index
from gaitsearch.index.manifest import (
    MANIFEST_FILE,
    METADATA_FILE,
    VECTORS_FILE,
    IndexManifest,
    file_checksum,
)


def publish_version(
    index_dir: Path,
    staging: Path,
    manifest: IndexManifest,
) -> Path:
    """Checksum, rename into place, verify it loads, point ``CURRENT`` at it. On any failure
    (a damaged file, a full disk while writing the manifest or ``CURRENT``) the version is
    removed again unless ``CURRENT`` already names it, and the error is raised."""
    try:
        manifest.files = {
            VECTORS_FILE: file_checksum(staging / VECTORS_FILE),
            METADATA_FILE: file_checksum(staging / METADATA_FILE),
        }
        with versions.writing(staging / MANIFEST_FILE):
            manifest.save(staging)
            final = versions.finalize(staging)
        # Verify the finished version loads before anyone can be pointed at it.
        load_index(index_dir, manifest.version).close()
        versions.set_current(index_dir, manifest.version)
    except BaseException:
        versions.discard(index_dir, manifest.version)
        raise
    return final
