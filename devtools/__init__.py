"""Developer tools: benchmarks (`sibyl bench`, `bench-api`, `bench-llm`, `bench-robust`) and the local model
helper. Not in the wheel (pyproject's package list leaves them out): the CLI loads them from a source
checkout, and they are never on the serving path."""
