"""`workbench bench`: measured figures, each against a baseline taken in the same run.

One module per suite (`matrix`, `engine`, `server`, `formats`, `tui`, `adaptive`, `chunks`, `stress`,
`soak`), the shared `harness`, and `suites`: the table the CLI and the runner both read. See the
docs/figures.md (Performance) for what each measures and the figures it gave.
"""
