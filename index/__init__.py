"""Batch embedding jobs, FAISS index build, metadata store, versioned index directories."""

import logging

# faiss logs every CPU-feature probe at INFO; the CLI runs at INFO.
logging.getLogger("faiss.loader").setLevel(logging.WARNING)
