"""Policies composed around backends: retries (and, later, breakers, limits, budgets, cache)."""
