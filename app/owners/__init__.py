"""Owners and their API keys: every data set and job belongs to one owner, and only that owner sees it."""
