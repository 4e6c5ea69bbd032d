"""One module per source format; each registers its decoder with `register_dataset`.

`raysweep.data.registry` imports every module here on first use: a new format is a new file.
"""
