//! The project's host command line, built with the e2e suite so its tests
//! can run instances as processes (and SIGKILL them): the same
//! `spinoff_host::cli` as `target/debug/spinoff-host`, built by the same
//! `cargo test` invocation with the same features.

fn main() -> anyhow::Result<()> {
    spinoff_host::cli::main()
}
