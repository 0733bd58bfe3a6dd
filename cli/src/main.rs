//! `spinoff`: the command line for Spinoff.
//!
//! - `spinoff dataset copy [SOURCE] [TARGET] [--skip-history] [--detach] [--attach JOB] [--list]`:
//!   Sanity-style dataset copies, followed live on the job's `listen` stream;
//! - `spinoff clone REF TARGET [--strategy now|last_snapshot|pitr] [--at TIME] [--skip-history] [--copy] [--hydrate]`:
//!   a data-API clone of any resource (a copy-on-write branch unless `--copy`), followed live;
//! - `spinoff hydrate REF`: materialise a branch, followed live;
//! - `spinoff op status|cancel ID`: any family's operation, through the data API;
//! - `spinoff import FILE --into REF` (all or nothing at any size: an import session),
//!   `spinoff export REF [--as-of X]`: NDJSON in and out.
//!   `spinoff verify REF`: an fsck of one resource (non-zero when anything disagrees).
//!
//! Connection: `--url`/`SPINOFF_URL` (default http://127.0.0.1:3000),
//! `--token`/`SPINOFF_TOKEN`. Ctrl-C stops following; the job goes on.

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(
    name = "spinoff",
    version,
    about = "Copy, clone, import and export datasets on a Spinoff server"
)]
struct Cli {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Conn {
    /// The Spinoff server.
    #[arg(
        long,
        global = true,
        env = "SPINOFF_URL",
        default_value = "http://127.0.0.1:3000"
    )]
    url: String,
    /// A tenant token (from POST /data/v1/tokens).
    #[arg(long, global = true, env = "SPINOFF_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Sanity-style datasets.
    Dataset {
        #[command(subcommand)]
        command: DatasetCommand,
    },
    /// Clone a resource (family:id) into native:<name> through the data API, and follow it.
    Clone {
        source: String,
        target: String,
        #[arg(long, default_value = "now")]
        strategy: String,
        /// The point in time for --strategy pitr (RFC 3339).
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        skip_history: bool,
        /// Only these collections (repeatable).
        #[arg(long = "collection")]
        collections: Vec<String>,
        /// Start it and print the operation id without following.
        #[arg(long)]
        detach: bool,
        /// A physical copy in chunks instead of a copy-on-write branch.
        #[arg(long, conflicts_with = "hydrate")]
        copy: bool,
        /// A branch that also starts hydrating at once.
        #[arg(long)]
        hydrate: bool,
        /// A masked clone: `{"collection" or "*": {"/json/pointer": "null" |
        /// "redact" | "hash" | "fake_email"}}`, inline or `@file.json`.
        #[arg(long)]
        mask: Option<String>,
    },
    /// Hydrate a branch (family:id): copy what it reads through its ancestors into it, and follow it.
    Hydrate {
        resource: String,
        /// Print the operation id without following.
        #[arg(long)]
        detach: bool,
    },
    /// An operation of any family, by id.
    Op {
        #[command(subcommand)]
        command: OpCommand,
    },
    /// Import an NDJSON file ({"collection","key","body"} per line) into a resource.
    Import {
        file: String,
        #[arg(long)]
        into: String,
        /// Lines per request (each request is all or nothing).
        #[arg(long, default_value_t = 5000)]
        batch: usize,
    },
    /// Verify a resource (an fsck): recount every collection from the data
    /// and compare with the statistics, check its level chain and staging
    /// bookkeeping. Exits non-zero when anything disagrees.
    Verify {
        resource: String,
        /// Print the whole report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// What differs between a resource and another side, as NDJSON lines
    /// (then a summary line): its parent by default, or `--against` a
    /// resource ref, an LSN or a time of its own. Exits non-zero when the
    /// stream is cut before its summary.
    Diff {
        resource: String,
        #[arg(long)]
        against: Option<String>,
        /// Our side's point: an LSN or an RFC 3339 time.
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Reset a resource to the one it was cloned from: its newest state, or
    /// `--to` an LSN or time of it. Reads before the reset still answer what
    /// it was.
    Reset {
        resource: String,
        #[arg(long)]
        to: Option<String>,
        /// Reset a protected resource.
        #[arg(long)]
        force: bool,
    },
    /// Merge a resource into the one it was cloned from: the keys it wrote
    /// since its last merge (or its base) are written there at one LSN.
    /// Keys both changed are conflicts: listed (all of them, as NDJSON on
    /// stdout) and nothing merged, exit status 3, unless `--strategy`
    /// resolves them.
    Merge {
        resource: String,
        /// `ours` (this resource's versions win) or `theirs` (the parent's stay).
        #[arg(long, value_parser = ["ours", "theirs"])]
        strategy: Option<String>,
        /// From a masked branch: the JSON pointers that may flow back
        /// (comma-separated: `/status,/notes`).
        #[arg(long, value_delimiter = ',')]
        paths: Vec<String>,
        /// Run it in chunks the worker advances, whatever its size (a
        /// merge too large for one transaction always does), following
        /// its progress until it ends; Ctrl-C leaves it running.
        #[arg(long)]
        background: bool,
    },
    /// Cancel a resource's chunked merge under way: nothing of it shows.
    CancelMerge { resource: String },
    /// Protect a resource: direct writes, imports and deletes are refused
    /// (423) until it is unprotected.
    Protect { resource: String },
    /// Stop protecting a resource.
    Unprotect { resource: String },
    /// Export a resource's live records as NDJSON.
    Export {
        resource: String,
        /// An LSN or an RFC 3339 time.
        #[arg(long)]
        as_of: Option<String>,
        /// Write here instead of stdout.
        #[arg(long, short)]
        output: Option<String>,
    },
}

#[derive(Subcommand)]
enum DatasetCommand {
    /// Copy a dataset into a new one (Sanity Cloud Clone).
    Copy {
        source: Option<String>,
        target: Option<String>,
        /// The project (default: the only project of the token's tenant).
        #[arg(long, env = "SPINOFF_PROJECT")]
        project: Option<String>,
        #[arg(long)]
        skip_history: bool,
        /// Start the copy and print the job id without following it.
        #[arg(long, alias = "background")]
        detach: bool,
        /// Follow an existing job.
        #[arg(long, value_name = "JOB_ID", conflicts_with_all = ["source", "target", "detach"])]
        attach: Option<String>,
        /// List recent copy jobs.
        #[arg(long, conflicts_with_all = ["source", "target", "detach", "attach"])]
        list: bool,
        /// With --list: print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum OpCommand {
    Status { id: String },
    Cancel { id: String },
}

struct Client {
    url: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    fn new(c: &Conn) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Client {
            url: c.url.trim_end_matches('/').to_string(),
            token: c.token.clone(),
            agent,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<(u16, Value)> {
        let mut b = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("content-type", "application/json");
        if let Some(t) = &self.token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let mut resp = self
            .agent
            .run(b.body(body.unwrap_or_default())?)
            .with_context(|| format!("cannot reach {}", self.url))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// A 2xx JSON answer, or the server's message as the error.
    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let (s, v) = self.call(method, path, body.map(|b| b.to_string().into_bytes()))?;
        if (200..300).contains(&s) {
            Ok(v)
        } else {
            Err(anyhow!("{s}: {}", message(&v)))
        }
    }

    fn stream(&self, path: &str) -> Result<Box<dyn Read + Send + Sync>> {
        let mut b = ureq::http::Request::builder()
            .uri(format!("{}{path}", self.url))
            .header("accept", "text/event-stream");
        if let Some(t) = &self.token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let resp = self
            .agent
            .run(b.body(())?)
            .with_context(|| format!("cannot reach {}", self.url))?;
        if resp.status().as_u16() != 200 {
            bail!("{}: the stream could not be opened", resp.status());
        }
        Ok(Box::new(resp.into_body().into_reader()))
    }
}

/// `spinoff merge`: one request; on conflicts, every page of them as
/// NDJSON on stdout, and exit status 3. A chunked merge (202) is followed
/// until it ends, its progress on stderr.
fn merge(
    c: &Client,
    resource: &str,
    strategy: Option<&str>,
    paths: &[String],
    background: bool,
) -> Result<()> {
    need_token(c)?;
    let path = format!("/data/v1/resources/{resource}/merge");
    let mut body = json!({ "strategy": strategy, "limit": 1000, "background": background });
    if !paths.is_empty() {
        body["paths"] = json!(paths);
    }
    let (s, v) = c.call("POST", &path, Some(body.to_string().into_bytes()))?;
    if s == 202 {
        return follow_merge(c, resource, &path, &v["merge"], paths);
    }
    match s {
        200 => {
            let into = v["into"]["ref"].as_str().unwrap_or("its parent");
            match v["lsn"].as_i64() {
                Some(l) => println!(
                    "{resource} merged into {into} at LSN {l}: {} keys written, {} conflicts resolved",
                    v["applied"], v["resolved"]
                ),
                None => println!("{resource} has nothing to merge into {into}"),
            }
            Ok(())
        }
        409 if v["error"] == "merge_conflict" => list_conflicts(c, &path, v, paths),
        _ => Err(anyhow!("{s}: {}", message(&v))),
    }
}

/// Follow a chunked merge until it ends: its progress on stderr (a
/// spinner on a terminal); on conflicts, list them and exit 3.
fn follow_merge(c: &Client, resource: &str, path: &str, run: &Value, paths: &[String]) -> Result<()> {
    let id = run["id"].as_str().unwrap_or("").to_string();
    let into = run["into"].as_str().unwrap_or("its parent").to_string();
    eprintln!("{resource}: merging into {into} in chunks (merge {id})");
    let tty = std::io::stderr().is_terminal();
    let pb = tty.then(|| {
        let pb = ProgressBar::new_spinner();
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    });
    let mut last = -1;
    let run = loop {
        let v = c.ok("GET", path, None)?;
        let run = v["merge"].clone();
        if run["id"] != json!(id) {
            bail!("{resource}'s merge {id} is no longer its latest: {run}");
        }
        let (examined, applied) = (run["examined"].as_i64().unwrap_or(0), run["applied"].as_i64().unwrap_or(0));
        let msg = format!("merging: {examined} keys examined, {applied} to write");
        match &pb {
            Some(pb) => pb.set_message(msg),
            None if examined != last => eprintln!("{msg}"),
            None => {}
        }
        last = examined;
        if run["state"] != "running" {
            break run;
        }
        std::thread::sleep(Duration::from_millis(400));
    };
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    match run["state"].as_str().unwrap_or("") {
        "merged" => {
            println!(
                "{resource} merged into {into} at LSN {}: {} keys written",
                run["lsn"], run["applied"]
            );
            Ok(())
        }
        "conflicts" => {
            let q = if paths.is_empty() {
                String::from("limit=1000")
            } else {
                form_urlencoded::Serializer::new(String::new())
                    .append_pair("limit", "1000")
                    .append_pair("paths", &paths.join(","))
                    .finish()
            };
            let first = c.ok("GET", &format!("{path}/conflicts?{q}"), None)?;
            list_conflicts(c, path, first, paths)
        }
        s => bail!(
            "merge {id} {s}: {}; nothing of it was merged",
            run["message"].as_str().unwrap_or("")
        ),
    }
}

/// Every page of a merge's conflicts from `first` on, as NDJSON on
/// stdout; exit status 3.
fn list_conflicts(c: &Client, path: &str, first: Value, paths: &[String]) -> Result<()> {
    let mut n = 0;
    let mut page = first;
    loop {
        for x in page["conflicts"].as_array().into_iter().flatten() {
            println!("{x}");
            n += 1;
        }
        let next = &page["next"];
        let (Some(col), Some(key)) = (next["collection"].as_str(), next["key"].as_str()) else {
            break;
        };
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("after_collection", col)
            .append_pair("after_key", key)
            .append_pair("limit", "1000");
        if !paths.is_empty() {
            q.append_pair("paths", &paths.join(","));
        }
        let q = q.finish();
        page = c.ok("GET", &format!("{path}/conflicts?{q}"), None)?;
    }
    eprintln!("{n} conflicts; nothing was merged. Merge with --strategy ours or --strategy theirs to resolve them");
    std::process::exit(3)
}

/// `spinoff diff`: the server's NDJSON lines to stdout, the summary also
/// to stderr; a stream cut before the summary is an error.
fn diff(c: &Client, resource: &str, against: Option<&str>, as_of: Option<&str>) -> Result<()> {
    need_token(c)?;
    let mut q: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = against {
        q.push(("against", a));
    }
    if let Some(a) = as_of {
        q.push(("as_of", a));
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(q)
        .finish();
    let mut b = ureq::http::Request::builder().uri(format!(
        "{}/data/v1/resources/{resource}/diff?{query}",
        c.url
    ));
    if let Some(t) = &c.token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let mut resp = c.agent.run(b.body(())?)?;
    if resp.status().as_u16() != 200 {
        let v: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap_or_default())
            .unwrap_or(Value::Null);
        bail!("{}: {}", resp.status(), message(&v));
    }
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let mut reader = BufReader::new(resp.into_body().into_reader());
    let mut line = String::new();
    let mut entries = 0u64;
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => bail!("the diff was cut after {entries} lines, before its summary"),
            Ok(_) => {}
            Err(e) => bail!("the diff was cut after {entries} lines: {e}"),
        }
        out.write_all(line.as_bytes())?;
        let v: Value = serde_json::from_str(&line)
            .with_context(|| format!("the server sent a line that is not JSON: {line:?}"))?;
        if let Some(s) = v.get("summary") {
            out.flush()?;
            eprintln!("{entries} differing keys; by collection: {s}");
            return Ok(());
        }
        entries += 1;
    }
}

/// `spinoff protect` / `unprotect`.
fn protect(c: &Client, resource: &str, protected: bool) -> Result<()> {
    need_token(c)?;
    let r = c.ok(
        "PATCH",
        &format!("/data/v1/resources/{resource}"),
        Some(json!({ "protected": protected })),
    )?;
    println!(
        "{resource} is {}",
        if r["protected"] == true { "protected" } else { "not protected" }
    );
    Ok(())
}

/// The human message of any family's error body.
fn message(v: &Value) -> String {
    v["message"]
        .as_str()
        .or(v["error"]["message"].as_str())
        .map(String::from)
        .unwrap_or_else(|| v.to_string())
}

fn need_token(c: &Client) -> Result<()> {
    if c.token.is_none() {
        bail!("no token: pass --token or set SPINOFF_TOKEN (mint one with POST /data/v1/tokens)");
    }
    Ok(())
}

fn bar(total: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:40}] {pos}/{len} ({eta})")
            .unwrap()
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// Server-sent events: (event, data) pairs, parsed by `eventsource-stream`
/// over the blocking response body.
fn events(r: Box<dyn Read + Send + Sync>) -> impl Iterator<Item = (String, String)> {
    use eventsource_stream::Eventsource;
    let mut r = BufReader::new(r);
    let chunks = futures::stream::iter(std::iter::from_fn(move || {
        let chunk = r.fill_buf().map(<[u8]>::to_vec);
        r.consume(chunk.as_ref().map_or(0, Vec::len));
        chunk
            .ok()
            .filter(|c| !c.is_empty())
            .map(Ok::<_, std::io::Error>)
    }));
    futures::executor::block_on_stream(chunks.eventsource())
        .map_while(Result::ok)
        .map(|e| (e.event, e.data))
}

/// Follow a Sanity job until it ends; Err with the server's message on failure.
fn follow_job(c: &Client, job: &str) -> Result<()> {
    let tty = std::io::stderr().is_terminal();
    let pb = if tty {
        Some(bar(100, &format!("copying (job {job})")))
    } else {
        None
    };
    let mut last = -1;
    let mut outcome: Option<(String, String)> = None;
    for (ev, data) in events(c.stream(&format!("/v1/jobs/{job}/listen"))?) {
        let v: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
        match ev.as_str() {
            "job" => {
                let p = v["progress"].as_i64().unwrap_or(0);
                if let Some(pb) = &pb {
                    pb.set_position(p as u64);
                } else if p != last {
                    eprintln!("progress: {p}% ({})", v["state"].as_str().unwrap_or(""));
                }
                last = p;
                if v["state"] == "completed" || v["state"] == "failed" {
                    outcome = Some((
                        v["state"].as_str().unwrap_or("").into(),
                        v["message"].as_str().unwrap_or("").into(),
                    ));
                }
            }
            "done" => break,
            _ => {}
        }
    }
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    match outcome {
        Some((s, _)) if s == "completed" => {
            eprintln!("done: job {job} completed");
            Ok(())
        }
        Some((_, m)) => bail!("job {job} failed: {m}"),
        None => bail!("the stream ended before job {job} did; follow it again with --attach {job}"),
    }
}

fn pick(prompt: &str, what: &str, options: &[String]) -> Result<String> {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        bail!("{what} is missing (no terminal to ask on): pass it as an argument");
    }
    if options.is_empty() {
        return Ok(dialoguer::Input::<String>::new()
            .with_prompt(prompt)
            .interact_text()?);
    }
    let i = dialoguer::Select::new()
        .with_prompt(prompt)
        .items(options)
        .default(0)
        .interact()?;
    Ok(options[i].clone())
}

fn dataset_copy(c: &Client, cmd: DatasetCommand) -> Result<()> {
    let DatasetCommand::Copy {
        source,
        target,
        project,
        skip_history,
        detach,
        attach,
        list,
        json,
    } = cmd;
    need_token(c)?;
    if let Some(job) = attach {
        return follow_job(c, &job);
    }
    let base = match &project {
        Some(p) => format!("/v1/projects/{p}"),
        None => "/v1".to_string(),
    };
    if list {
        let p = project.ok_or_else(|| anyhow!("--list needs --project (or SPINOFF_PROJECT)"))?;
        let jobs = c.ok(
            "GET",
            &format!("/v1/projects/{p}/datasets/copy?limit=50"),
            None,
        )?;
        if json {
            println!("{}", serde_json::to_string_pretty(&jobs)?);
        } else {
            println!(
                "{:<34} {:<10} {:<20} {:<20} {:<8} CREATED",
                "JOB", "STATE", "SOURCE", "TARGET", "HISTORY"
            );
            for j in jobs.as_array().into_iter().flatten() {
                println!(
                    "{:<34} {:<10} {:<20} {:<20} {:<8} {}",
                    j["id"].as_str().unwrap_or(""),
                    j["state"].as_str().unwrap_or(""),
                    j["sourceDataset"].as_str().unwrap_or(""),
                    j["targetDataset"].as_str().unwrap_or(""),
                    j["withHistory"],
                    j["createdAt"].as_str().unwrap_or("")
                );
            }
        }
        return Ok(());
    }
    let source = match source {
        Some(s) => s,
        None => {
            let names: Vec<String> = c
                .ok("GET", &format!("{base}/datasets"), None)
                .map(|v| {
                    v.as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|d| d["name"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            pick("Source dataset", "SOURCE", &names)?
        }
    };
    let target = match target {
        Some(t) => t,
        None => pick("Target dataset name", "TARGET", &[])?,
    };
    let started = c.ok(
        "PUT",
        &format!("{base}/datasets/{source}/copy"),
        Some(json!({"targetDataset": target, "skipHistory": skip_history})),
    )?;
    let job = started["jobId"]
        .as_str()
        .ok_or_else(|| anyhow!("no jobId in {started}"))?
        .to_string();
    eprintln!("{}", started["message"].as_str().unwrap_or(""));
    if detach {
        println!("{job}");
        eprintln!("follow it with: spinoff dataset copy --attach {job}");
        return Ok(());
    }
    follow_job(c, &job)
}

fn follow_op(c: &Client, id: &str) -> Result<()> {
    let tty = std::io::stderr().is_terminal();
    let mut pb: Option<ProgressBar> = None;
    for (ev, data) in events(c.stream(&format!("/data/v1/operations/{id}/events"))?) {
        let v: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
        let (copied, total) = (
            v["records_copied"].as_u64().unwrap_or(0),
            v["records_total"].as_u64().unwrap_or(0),
        );
        if tty {
            let b = pb.get_or_insert_with(|| bar(total, "cloning"));
            b.set_length(total.max(copied));
            b.set_position(copied);
        } else {
            eprintln!("{ev}: {copied}/{total} records");
        }
        match ev.as_str() {
            "succeeded" => {
                if let Some(b) = pb {
                    b.finish_and_clear();
                }
                eprintln!("done: {copied} records copied");
                return Ok(());
            }
            "failed" | "canceled" => {
                bail!("operation {id} {ev}: {}", v["error"].as_str().unwrap_or(""))
            }
            _ => {}
        }
    }
    bail!("the stream ended before operation {id} did; check it with: spinoff op status {id}")
}

fn run(cli: Cli) -> Result<()> {
    let c = Client::new(&cli.conn);
    match cli.command {
        Command::Dataset { command } => dataset_copy(&c, command),
        Command::Clone {
            source,
            target,
            strategy,
            at,
            skip_history,
            collections,
            detach,
            copy,
            hydrate,
            mask,
        } => {
            need_token(&c)?;
            let mask: Option<Value> = match mask.as_deref() {
                None => None,
                Some(m) => {
                    let text = match m.strip_prefix('@') {
                        Some(f) => std::fs::read_to_string(f).with_context(|| format!("--mask {m}"))?,
                        None => m.to_string(),
                    };
                    Some(serde_json::from_str(&text).with_context(|| format!("--mask {m}: not JSON"))?)
                }
            };
            let mut body = json!({"target": target, "strategy": strategy, "history": !skip_history,
                "mode": if copy { "copy" } else { "branch" }});
            if hydrate {
                body["hydrate"] = true.into();
            }
            if let Some(m) = mask {
                body["mask"] = m;
            }
            if let Some(t) = at {
                body["target_time"] = t.into();
            }
            if !collections.is_empty() {
                body["collections"] = json!(collections);
            }
            let op = c.ok(
                "POST",
                &format!("/data/v1/resources/{source}/clones"),
                Some(body),
            )?;
            let id = op["id"].as_str().unwrap_or("").to_string();
            if detach {
                println!("{id}");
                return Ok(());
            }
            eprintln!(
                "operation {id}: {} → {} as of LSN {}",
                op["source"], op["target"], op["snapshot_lsn"]
            );
            follow_op(&c, &id)
        }
        Command::Hydrate { resource, detach } => {
            need_token(&c)?;
            let v = c.ok(
                "POST",
                &format!("/data/v1/resources/{resource}/hydrate"),
                None,
            )?;
            match v["id"].as_str() {
                None => {
                    println!("{resource} holds all its versions itself: nothing to hydrate");
                    Ok(())
                }
                Some(id) if detach => {
                    println!("{id}");
                    Ok(())
                }
                Some(id) => follow_op(&c, id),
            }
        }
        Command::Op { command } => {
            need_token(&c)?;
            let v = match command {
                OpCommand::Status { id } => {
                    c.ok("GET", &format!("/data/v1/operations/{id}"), None)?
                }
                OpCommand::Cancel { id } => {
                    c.ok("POST", &format!("/data/v1/operations/{id}/cancel"), None)?
                }
            };
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        Command::Import { file, into, batch } => {
            need_token(&c)?;
            let f = std::fs::File::open(&file).with_context(|| format!("opening {file}"))?;
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            let pb = if std::io::stderr().is_terminal() {
                Some(bar(size, "importing"))
            } else {
                None
            };
            // All or nothing at any size: an import session (staged on the
            // server in short transactions) committed once every line is
            // in; abandoned on any error.
            let (s, r) = c.call("POST", &format!("/data/v1/resources/{into}/imports"), None)?;
            if s != 201 {
                bail!("opening an import into {into}: {s}: {}", message(&r));
            }
            let id = r["id"].as_str().unwrap_or("").to_string();
            let result = (|| -> Result<u64> {
                let (mut staged, mut sent, mut buf, mut n) = (0u64, 0u64, String::new(), 0usize);
                let mut flush = |buf: &mut String, n: &mut usize| -> Result<()> {
                    if *n == 0 {
                        return Ok(());
                    }
                    let (s, r) = c.call(
                        "POST",
                        &format!("/data/v1/resources/{into}/imports/{id}/lines"),
                        Some(std::mem::take(buf).into_bytes()),
                    )?;
                    if s != 200 {
                        bail!(
                            "import stopped after {staged} records (nothing was imported): {s}: {}",
                            message(&r)
                        );
                    }
                    staged += *n as u64;
                    *n = 0;
                    Ok(())
                };
                for line in BufReader::new(f).lines() {
                    let line = line?;
                    sent += line.len() as u64 + 1;
                    if line.trim().is_empty() {
                        continue;
                    }
                    buf.push_str(&line);
                    buf.push('\n');
                    n += 1;
                    if n >= batch {
                        flush(&mut buf, &mut n)?;
                        if let Some(pb) = &pb {
                            pb.set_position(sent);
                        }
                    }
                }
                flush(&mut buf, &mut n)?;
                let (s, r) = c.call(
                    "POST",
                    &format!("/data/v1/resources/{into}/imports/{id}/commit"),
                    None,
                )?;
                if s != 200 {
                    bail!("committing the import: {s}: {}", message(&r));
                }
                Ok(r["imported"].as_u64().unwrap_or(0))
            })();
            if let Some(pb) = pb {
                pb.finish_and_clear();
            }
            match result {
                Ok(done) => {
                    eprintln!("imported {done} records into {into}");
                    Ok(())
                }
                Err(e) => {
                    let _ = c.call(
                        "DELETE",
                        &format!("/data/v1/resources/{into}/imports/{id}"),
                        None,
                    );
                    Err(e)
                }
            }
        }
        Command::Diff {
            resource,
            against,
            as_of,
        } => diff(&c, &resource, against.as_deref(), as_of.as_deref()),
        Command::Reset {
            resource,
            to,
            force,
        } => {
            need_token(&c)?;
            let to: Value = match to.as_deref() {
                None => Value::Null,
                Some(t) if t.bytes().all(|b| b.is_ascii_digit()) => json!(t
                    .parse::<i64>()
                    .with_context(|| format!("--to {t}: not an LSN"))?),
                Some(t) => json!(t),
            };
            let r = c.ok(
                "POST",
                &format!("/data/v1/resources/{resource}/reset"),
                Some(json!({ "to": to, "force": force })),
            )?;
            println!("{resource} reset at LSN {}", r["reset_lsn"]);
            Ok(())
        }
        Command::Merge {
            resource,
            strategy,
            paths,
            background,
        } => merge(&c, &resource, strategy.as_deref(), &paths, background),
        Command::CancelMerge { resource } => {
            need_token(&c)?;
            let v = c.ok("DELETE", &format!("/data/v1/resources/{resource}/merge"), None)?;
            println!("{resource}: merge {} canceled", v["merge"]["id"].as_str().unwrap_or(""));
            Ok(())
        }
        Command::Protect { resource } => protect(&c, &resource, true),
        Command::Unprotect { resource } => protect(&c, &resource, false),
        Command::Verify { resource, json } => {
            need_token(&c)?;
            let op = c.ok(
                "POST",
                &format!("/data/v1/resources/{resource}/verify"),
                None,
            )?;
            let id = op["id"]
                .as_str()
                .ok_or_else(|| anyhow!("the server answered no operation id: {op}"))?
                .to_string();
            // Each read of the operation advances it a bounded step when no
            // worker does; the worker advances it too.
            let tty = std::io::stderr().is_terminal();
            let mut pb: Option<ProgressBar> = None;
            let op = loop {
                let op = c.ok("GET", &format!("/data/v1/operations/{id}"), None)?;
                let (seen, total) = (
                    op["progress"]["records_copied"].as_u64().unwrap_or(0),
                    op["progress"]["records_total"].as_u64().unwrap_or(0),
                );
                if tty {
                    let b = pb.get_or_insert_with(|| bar(total, "verifying"));
                    b.set_length(total.max(seen));
                    b.set_position(seen);
                }
                match op["status"].as_str() {
                    Some("succeeded") => break op,
                    Some("failed") | Some("canceled") => bail!(
                        "verification {id} {}: {}",
                        op["status"].as_str().unwrap_or(""),
                        op["error"].as_str().unwrap_or("")
                    ),
                    _ => std::thread::sleep(Duration::from_millis(200)),
                }
            };
            if let Some(b) = pb {
                b.finish_and_clear();
            }
            let report = &op["report"];
            if json {
                println!("{report:#}");
            } else {
                println!("{resource} as of LSN {}", report["lsn"]);
                if let Some(cols) = report["collections"].as_object() {
                    for (name, v) in cols {
                        println!(
                            "  {name}: {} records, {} bytes counted; statistics {} records, {} bytes",
                            v["counted"]["records"], v["counted"]["bytes"],
                            v["statistics"]["records"], v["statistics"]["bytes"]
                        );
                    }
                }
            }
            let problems: Vec<&str> = report["problems"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match report["clean"].as_bool() {
                Some(true) => {
                    eprintln!("clean: nothing disagrees");
                    Ok(())
                }
                Some(false) => {
                    for p in &problems {
                        eprintln!("problem: {p}");
                    }
                    bail!("{resource}: {} problems found", problems.len())
                }
                None => bail!("the verification ended without a report: {op}"),
            }
        }
        Command::Export {
            resource,
            as_of,
            output,
        } => {
            need_token(&c)?;
            let q = as_of.map(|a| format!("?as_of={a}")).unwrap_or_default();
            let mut b = ureq::http::Request::builder()
                .uri(format!("{}/data/v1/resources/{resource}/export{q}", c.url));
            if let Some(t) = &c.token {
                b = b.header("authorization", format!("Bearer {t}"));
            }
            let mut resp = c.agent.run(b.body(())?)?;
            if resp.status().as_u16() != 200 {
                let v: Value =
                    serde_json::from_str(&resp.body_mut().read_to_string().unwrap_or_default())
                        .unwrap_or(Value::Null);
                bail!("{}: {}", resp.status(), message(&v));
            }
            let mut out: Box<dyn Write> = match output {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(&p).with_context(|| format!("creating {p}"))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout())),
            };
            // What the export must hold, where the server knows it (an
            // export at the head): checked against what arrives.
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let want: Option<u64> = match header("spinoff-export-records") {
                Some(v) => Some(v.parse().with_context(|| {
                    format!("the server's spinoff-export-records header is not a count: {v:?}")
                })?),
                None => None,
            };
            let lsn = header("spinoff-as-of-lsn").unwrap_or_else(|| "?".into());
            let mut records = 0u64;
            let mut reader = BufReader::new(resp.into_body().into_reader());
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) => break,
                    Ok(_) if !line.ends_with('\n') => bail!(
                        "the export was cut after {records} records: its last line has no end"
                    ),
                    Ok(_) => {
                        out.write_all(line.as_bytes())?;
                        records += 1;
                    }
                    Err(e) => bail!("the export was cut after {records} records: {e}"),
                }
            }
            out.flush()?;
            if let Some(want) = want {
                if want != records {
                    bail!(
                        "the export holds {records} records, but {resource} had {want} at LSN {lsn}: \
                         the export is not complete"
                    );
                }
            }
            eprintln!("exported {records} records (LSN {lsn})");
            Ok(())
        }
    }
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
