"""Skeleton data, the synthetic gait world, describers, encoders, training and evaluation.

Knows nothing of HTTP or FAISS.
"""
