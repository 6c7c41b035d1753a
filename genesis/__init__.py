"""genesis package of bakong-sim."""
