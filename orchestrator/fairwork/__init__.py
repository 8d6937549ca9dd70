"""Fair work: the wage floor on total time (pricing, who is below it, what they are owed) and the
policies a task passes before it leaves the loop (purpose, sensitive data, disturbing content)."""
