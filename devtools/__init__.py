"""Developer tools (benchmarks, robustness checks): run from a checkout, never on the serving path."""
