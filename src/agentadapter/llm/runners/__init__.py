"""llm/runners."""
