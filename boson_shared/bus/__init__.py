"""The transport seam and its two implementations (AMQP and in-memory)."""
