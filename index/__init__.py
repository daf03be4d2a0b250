"""Batch embedding jobs, FAISS index build, metadata store, versioned index directories."""
