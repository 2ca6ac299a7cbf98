"""Cost per model: what training, serving, monitoring and storage cost each model per week, and what it bought."""
