"""A sweep's report, rebuilt from MLflow alone: one module per job.

- `tables`: `SweepData` (a sweep as tables) and the summary and mean ± std tables made from it.
- `text`: those tables as terminal text and Markdown.
- `plots`, `landscape`: the comparison figures (best per axis value, curves, gap; loss bands).
- `store`, `read`: opening an MLflow store and finding a sweep's runs; a sweep as `SweepData`.
- `build`: the report's files written into a directory (reads MLflow, never writes it).
- `publish`: logging those files on a run, through whatever writer the caller owns.
- `best`, `export`: `raysweep best` and `raysweep export`.

Nothing is re-exported here: each name has one home, imported from it.
"""
