"""A real uvicorn server on 127.0.0.1 (random port) in a thread, for the HTTP tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 at a free port; yields the base URL (``http://127.0.0.1:PORT``)."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


HANDBOOK = """# Leave

Employees get 25 days of paid leave per year. Leave requests go through the HR portal.

# Office

The office opens at 8 am on weekdays. Visitors sign in at the front desk.
"""
ANSWER = "Employees get 25 days of paid leave per year [1]."
QUESTION = "How many days of paid leave do employees get per year?"


def handbook_settings(tmp_path: Path) -> Any:
    """Settings with the fake embedder and a fake model answering :data:`ANSWER`, and a
    knowledge base ``handbook`` holding :data:`HANDBOOK` (the server tests' shared setup)."""
    from knowbase.config import Settings
    from knowbase.knowledge.base import KnowledgeBase

    s = Settings.load(embedder="fake", model=f"fake:{ANSWER}")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "handbook.md").write_text(HANDBOOK, encoding="utf-8")
    with KnowledgeBase.create("handbook", settings=s) as kb:
        kb.ingest([docs])
    return s
