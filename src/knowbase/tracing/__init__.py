"""Call tracing: every model call and every chain/agent step, recorded in SQLite."""
