"""GPU jobs: SQLite keeps the record, Ray runs the work. The Discord layer calls `JobRunner` only."""
