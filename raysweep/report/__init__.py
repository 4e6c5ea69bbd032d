"""A sweep's report, rebuilt from MLflow alone: one module per job.

- `tables`: `SweepData` (a sweep as tables) and the summary and mean ± std tables made from it.
- `text`: those tables as terminal text, Markdown and HTML.
- `plotkit`: what every figure shares (legends that fit, grouping, names, `PlotInfo`).
- `plots`, `study_plots`, `class_plots`, `cost_plots`, `landscape`: the figures (best per axis
  value, curves, gap; curves per study and factor; per-class accuracy; accuracy against size
  and time; loss bands), `studies` the grouping by study and factor, `figures` which are drawn.
- `page`: report.html, the whole report in one self-contained page.
- `store`, `read`: opening an MLflow store and finding a sweep's runs; a sweep as `SweepData`.
- `build`: the report's files written into a directory (reads MLflow, never writes it).
- `publish`: logging those files on a run, through whatever writer the caller owns.
- `best`, `export`: `raysweep best` and `raysweep export`.

Nothing is re-exported here: each name has one home, imported from it.
"""
