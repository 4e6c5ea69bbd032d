"""raysweep: CNN sweeps on Ray Tune + Ray Train, tracked in MLflow."""
