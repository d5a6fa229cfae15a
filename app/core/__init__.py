"""What every room uses: for now the domain error type (app.core.errors)."""
