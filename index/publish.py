"""Publishing a finished index version: checksums into its manifest, the staging directory
renamed into place, the version loaded once to prove it works, and only then ``CURRENT``
pointed at it (a version that does not load is removed and ``CURRENT`` left as it was).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from gaitsearch.index import versions
from gaitsearch.index.loaded_index import IndexLoadError, load_index
from gaitsearch.index.manifest import METADATA_FILE, VECTORS_FILE, IndexManifest, file_checksum


def publish_version(
    index_dir: Path,
    staging: Path,
    manifest: IndexManifest,
) -> Path:
    manifest.files = {
        VECTORS_FILE: file_checksum(staging / VECTORS_FILE),
        METADATA_FILE: file_checksum(staging / METADATA_FILE),
    }
    manifest.save(staging)
    final = versions.finalize(staging)
    # Verify the finished version loads before anyone can be pointed at it.
    try:
        load_index(index_dir, manifest.version).close()
    except IndexLoadError:
        shutil.rmtree(final, ignore_errors=True)
        raise
    versions.set_current(index_dir, manifest.version)
    return final
