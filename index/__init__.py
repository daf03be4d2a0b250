"""Batch embedding jobs, FAISS index build, metadata store, versioned index directories."""

import logging
import os

# OpenMP threads (torch and faiss) spin while waiting by default; on a small, shared machine
# that spinning steals the cores the other thread needs: measured here, PQ training ran 5x
# and encoder batches up to 1.5x slower under load. Only takes effect before OpenMP starts.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# faiss logs every CPU-feature probe at INFO; the CLI runs at INFO.
logging.getLogger("faiss.loader").setLevel(logging.WARNING)
