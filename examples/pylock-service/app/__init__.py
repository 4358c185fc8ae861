"""The pylock-service example: plain application code, copied into the image (no packaging)."""
