"""What a verb works on, built once: the runtime, the opened Hub, the backends."""
