"""Documents: reading, cleaning, the fidelity check and language detection."""
