"""Security tests: access rules, hostile input, cache isolation, rate limits, keys and fuzzing."""
