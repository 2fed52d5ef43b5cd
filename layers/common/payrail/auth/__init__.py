"""Sign-in and sessions: the service's own access tokens, refresh tokens, and the guard every
protected route uses."""
