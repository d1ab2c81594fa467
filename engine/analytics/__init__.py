"""Reports over a journal (docs/ROUTING.md): replayed, never changing what the core does.

This package only re-exports; each report lives in a module of its own (``best_execution``:
`engine report best-execution`).
"""
from .best_execution import (
    AVG_EXTRA_PLACES,
    COLUMN_NAMES,
    COLUMNS,
    BestExecutionReport,
    ParentExecution,
    ReportArgumentError,
    arrow_schema,
    best_execution,
    read_rows,
    run_best_execution,
    write_report,
)

__all__ = [
    "AVG_EXTRA_PLACES", "COLUMN_NAMES", "COLUMNS", "BestExecutionReport", "ParentExecution",
    "ReportArgumentError", "arrow_schema", "best_execution", "read_rows", "run_best_execution",
    "write_report",
]
