"""The API for downstream systems (`/api/v1`): bearer tokens, scopes, rate limits, RFC 9457
problem documents, and an OpenAPI 3.1 description of itself."""
