"""node package of bakong-sim."""
