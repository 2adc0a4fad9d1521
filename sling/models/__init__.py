"""Models: the pretrained source and base snapshot, loading students with adapters, precision, decoding and training."""
