"""What every room uses, with no web framework: the domain error type, and a page of a list."""
