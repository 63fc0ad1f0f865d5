"""Datasets: MVTec AD loading and the embedded demo dataset."""
