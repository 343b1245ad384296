"""The on-disk index: one directory of checksummed artifacts (DESIGN §2.4).

- :mod:`.manifest` — the typed, versioned manifest (the schema; no file names);
- :mod:`.artifacts` — the writer and the reader of the directory (the only module naming files,
  and the only one opening or hashing the manifest: its fingerprint, "still current?");
- :mod:`.catalogue` — the indexed items (SQLite table) and the filter masks;
- :mod:`.catalogue_head` — the label head fitted on the catalogue, stored as arrays;
- :mod:`.stores` — the store seam and which backend holds the vectors: :mod:`.faiss_store`
  (with :mod:`.ivfpq`) or :mod:`.milvus_store` (with :mod:`.milvus_connection`);
- :mod:`.compatibility` — does a manifest fit the configured models and taxonomy;
- :mod:`.atomic` / :mod:`.locking` — the atomic directory swap and the writers' lock;
- :mod:`.updating` / :mod:`.verification` — in-place add/remove, and ``index verify``.
"""
