"""The teacher: an OpenAI-compatible or embedded model client with its reply cache, and the quality filters for what it writes."""
