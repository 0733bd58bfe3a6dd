//! `spinoff-host`: run a Spin app's components without the `spin` CLI
//! (see [`spinoff_host::cli`]).

fn main() -> anyhow::Result<()> {
    spinoff_host::cli::main()
}
