"""consensus package of bakong-sim."""
