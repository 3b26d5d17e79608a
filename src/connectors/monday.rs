//! Monday GraphQL client (placeholder; replaced by the Monday work).
