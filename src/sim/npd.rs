//! NPD simulator (placeholder; replaced by the NPD work).
