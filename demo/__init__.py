"""make demo: the product's story on a fresh local stack."""
