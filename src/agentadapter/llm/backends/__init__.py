"""llm/backends."""
