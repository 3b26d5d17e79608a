//! Monday simulator (placeholder; replaced by the Monday work).
