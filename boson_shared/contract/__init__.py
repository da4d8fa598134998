"""The wire contract: messages, topology and the codec, defined nowhere else."""
