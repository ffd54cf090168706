"""Domain services: plain functions that check rules, write and flush, and never commit."""
