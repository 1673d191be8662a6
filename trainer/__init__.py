"""doppel's GPU side: Flux LoRA training and generation. Never imports discord."""
