"""Crowd backends: where tasks go to people and answers come back from."""
