"""Knowledge-base question answering: ingest, hybrid retrieval, cited answers."""
