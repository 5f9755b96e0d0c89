"""Private Redis and PostgreSQL servers, started on demand by ``meetsync dev``, ``meetsync demo``,
the tests and the benchmarks: never the machine's own."""
