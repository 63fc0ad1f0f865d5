"""Datasets: MVTec AD and ShanghaiTech Campus loading, the embedded demo dataset and the synthetic STC."""
