"""The public event contract: the typed model, validation, decoding and encoding."""
