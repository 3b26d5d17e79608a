//! NPD REST client (placeholder; replaced by the NPD work).
