//! Typed inbound events (placeholder; replaced by the events work).
