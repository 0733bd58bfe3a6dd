//! `spinoff-bench-sanity-cli`: Sanity's own CLI (tests/sanity-cli, npm
//! `@sanity/cli` pinned, unchanged) copying a dataset the two ways the
//! Cloud Clone documentation compares: `sanity dataset export` then
//! `sanity dataset import` into a new dataset, against `sanity dataset copy`
//! (Cloud Clone, following its job to the end), on the same source, against
//! the app in the test host with its cron running (the clone worker every
//! 2 s, as under Spin). Prints a Markdown row per size with the ratio.
//! Fails when a copy differs from its source.
//!
//! ```text
//! (cd tests/sanity-cli && npm ci)
//! cargo run -p spinoff-bench --bin spinoff-bench-sanity-cli -- --sizes 10000,100000
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;
use spinoff_e2e::*;

#[derive(Parser)]
struct Opts {
    /// Dataset sizes (documents of ~1 KB in 4 types).
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    sizes: Vec<usize>,
}

struct Cli {
    dir: PathBuf,
    api: String,
    proxy: String,
    token: String,
    home: tempfile::TempDir,
    project: PathBuf,
}

impl Cli {
    fn run(&self, args: &[&str]) -> Duration {
        let bin = self.dir.join("node_modules/.bin");
        let t = Instant::now();
        let out = Command::new(bin.join("node"))
            .arg(self.dir.join("node_modules/@sanity/cli/bin/run.js"))
            .args(args)
            .current_dir(&self.project)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("HOME", self.home.path())
            .env("SANITY_INTERNAL_ENV", &self.api)
            .env("SANITY_AUTH_TOKEN", &self.token)
            .env("HTTP_PROXY", &self.proxy)
            .env("http_proxy", &self.proxy)
            .env("NODE_USE_ENV_PROXY", "1")
            .env("NO_PROXY", "")
            .env("no_proxy", "")
            .env("DO_NOT_TRACK", "1")
            .env("NO_UPDATE_NOTIFIER", "1")
            .env("NO_COLOR", "1")
            .env("CI", "true")
            .output()
            .expect("the CLI's node runs");
        let took = t.elapsed();
        assert!(
            out.status.success(),
            "sanity {}:\n{}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        took
    }
}

/// A dataset's documents as sorted NDJSON lines, through the export endpoint.
fn documents(app: &App, auth: &str, dataset: &str) -> Vec<String> {
    let r = app.request(
        "GET",
        &format!("/v2025-09-16/data/export/{dataset}"),
        &[("authorization", auth), ("host", "bench.spinoff.test")],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let mut lines: Vec<String> = r.body.lines().map(String::from).collect();
    lines.sort();
    lines
}

/// Without the attributes a mutation sets (`_rev`, `_createdAt`, `_updatedAt`).
fn content(lines: &[String]) -> Vec<Value> {
    let mut v: Vec<Value> = lines
        .iter()
        .map(|l| {
            let mut d: Value = serde_json::from_str(l).unwrap();
            for k in ["_rev", "_createdAt", "_updatedAt"] {
                d.as_object_mut().unwrap().remove(k);
            }
            d
        })
        .collect();
    v.sort_by_key(|d| d["_id"].as_str().unwrap().to_string());
    v
}

fn main() {
    let opts = Opts::parse();
    let dir = repo_root().join("tests/sanity-cli");
    assert!(
        dir.join("node_modules/@sanity/cli").exists(),
        "install tests/sanity-cli first (scripts/test does)"
    );
    // The worker's cron schedule runs, as it does for a user: the CLI's
    // `dataset copy` waits on the job like any client.
    let app = App::start_with(|o| o.cron = true);
    let token = app.token("bench");
    let auth = format!("Bearer {token}");
    let port = app.base.rsplit(':').next().unwrap().to_string();
    let work = tempfile::tempdir().unwrap();
    let project = work.path().join("bench");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("sanity.cli.js"),
        "export default {api: {projectId: 'bench'}}\n",
    )
    .unwrap();
    let cli = Cli {
        dir,
        api: format!("http://spinoff.test:{port}"),
        proxy: wildcard_proxy(&app.base),
        token,
        home: tempfile::tempdir().unwrap(),
        project,
    };
    println!("| size | figure | Spinoff (dataset copy) | baseline (export + import) | ratio |");
    println!("|---:|---|---:|---:|---:|");
    for &n in &opts.sizes {
        let src = format!("src{n}");
        let r = app.send_json(
            "PUT",
            &format!("/v1/projects/bench/datasets/{src}"),
            &[("authorization", &auth)],
            &json!({}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        // Load ~1 KB documents in 4 types through the mutate endpoint.
        let pad = "x".repeat(900);
        for start in (0..n).step_by(2_000) {
            let mutations: Vec<Value> = (start..(start + 2_000).min(n))
                .map(|i| json!({"create": {"_id": format!("doc-{i:08}"), "_type": (["post", "author", "category", "tag"][i % 4]), "i": i, "pad": pad}}))
                .collect();
            let r = app.request(
                "POST",
                &format!("/v2025-09-16/data/mutate/{src}"),
                &[("authorization", &auth), ("host", "bench.spinoff.test")],
                Some(json!({"mutations": mutations}).to_string().as_bytes()),
            );
            assert_eq!(r.status, 200, "{}", r.body);
        }
        let source = documents(&app, &auth, &src);
        assert_eq!(source.len(), n);

        // Baseline: the CLI's export, then its import into a new dataset.
        let archive = work.path().join(format!("{src}.tar.gz"));
        let export = cli.run(&[
            "dataset",
            "export",
            &src,
            archive.to_str().unwrap(),
            "--overwrite",
        ]);
        let imported = format!("imported{n}");
        cli.run(&["dataset", "create", &imported]);
        let import = cli.run(&[
            "dataset",
            "import",
            archive.to_str().unwrap(),
            "--dataset",
            &imported,
        ]);
        assert_eq!(
            content(&documents(&app, &auth, &imported)),
            content(&source),
            "the import differs from its source"
        );

        // Spinoff: the CLI's Cloud Clone copy, followed to the end.
        let copied = format!("copied{n}");
        let copy = cli.run(&["dataset", "copy", &src, &copied]);
        assert_eq!(
            documents(&app, &auth, &copied),
            source,
            "the copy differs from its source"
        );
        let baseline = export + import;
        println!(
            "| {n} | `sanity dataset copy` vs `sanity dataset export` + `import` (s) | {:.2} | {:.2} ({:.2} + {:.2}) | {:.1}× faster |",
            copy.as_secs_f64(),
            baseline.as_secs_f64(),
            export.as_secs_f64(),
            import.as_secs_f64(),
            baseline.as_secs_f64() / copy.as_secs_f64()
        );
        // Free the space before the next size.
        for d in [&src, &imported, &copied] {
            app.request(
                "DELETE",
                &format!("/v1/projects/bench/datasets/{d}"),
                &[("authorization", &auth)],
                None,
            );
        }
        let _ = std::fs::remove_file(Path::new(&archive));
    }
}
