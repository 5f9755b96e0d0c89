"""meetsync's benchmark harness: ``python -m bench`` runs every stage and rewrites BENCHMARKS.md."""
