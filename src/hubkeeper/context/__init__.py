"""What a verb works on, built once: the opened Hub, its URLs, the runtime the renderer needs, a
user's limits."""
