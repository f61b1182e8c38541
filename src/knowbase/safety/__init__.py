"""Guards for running what models write: safe arithmetic and an SSRF-proof URL fetcher.

* :func:`knowbase.safety.math.safe_eval` -- arithmetic without ``eval``, bounded in time
  and memory.
* :class:`knowbase.safety.urls.UrlGuard` and :func:`knowbase.safety.urls.fetch` --
  host allowlist, private-address refusal, checked redirects, size and time limits.
* :class:`knowbase.safety.files.FileLimits` -- per-file limits checked before a loader
  expands anything (ZIP members and ratios, YAML aliases, PDF page trees, element counts).
"""
