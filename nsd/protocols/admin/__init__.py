"""The admin API under /api/v1 (api), its cache controls (cache) and the request helpers both use."""
