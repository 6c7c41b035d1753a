"""cli package of bakong-sim."""
