"""Shipped strategies, one Strategy subclass per file; load them with get_strategy_from_file."""
