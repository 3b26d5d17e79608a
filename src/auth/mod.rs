//! Authenticity checks (placeholder; replaced by the auth work).
