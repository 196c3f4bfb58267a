"""Every side effect of MAHSM: LLM providers, tools, Postgres, blobs."""
