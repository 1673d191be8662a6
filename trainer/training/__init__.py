"""Training an adapter: the data set, the loop, checkpoints, samples and the timeline."""
