"""Offline table readers, backfill and point-in-time training sets."""
