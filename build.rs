//! Tells the end-to-end tests whether PostgreSQL is configured.
//!
//! The PostgreSQL variants of the store tests carry
//! `#[cfg_attr(not(gateway_test_postgres), ignore = "...")]`: libtest has no way for a running test
//! to say "skipped", so without `GATEWAY_TEST_POSTGRES_URL` they are compiled as ignored and the
//! summary counts them as such, instead of passing without having run. Cargo re-runs this script
//! (and rebuilds) whenever the variable changes, so the flag always matches the environment
//! `cargo test` runs in.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(gateway_test_postgres)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=GATEWAY_TEST_POSTGRES_URL");
    let configured = std::env::var("GATEWAY_TEST_POSTGRES_URL").is_ok_and(|u| !u.trim().is_empty());
    if configured {
        println!("cargo::rustc-cfg=gateway_test_postgres");
    }
}
