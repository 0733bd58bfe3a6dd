//! A real PostgreSQL server for the tests: a throwaway cluster in a
//! temporary directory, on a free loopback port, stopped (SIGKILL) when
//! dropped. `scripts/services` installs Debian's `postgresql` and links its
//! `postgres` and `initdb` into `target/services/bin`.
//!
//! PostgreSQL refuses to run as root: as root, the cluster belongs to the
//! `postgres` user Debian's package creates, and the server runs as it.
//! `initdb` runs once per machine into `target/services/pg-template` (C
//! locale, UTF-8, trust on loopback, superuser `spinoff`); each server
//! starts on a copy of it. Durability is off (`fsync=off`): a test kills
//! apps, never this server, except where it says so.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::{free_port, repo_root};
use crate::services::binary;

/// The superuser every cluster has.
pub const USER: &str = "spinoff";

/// One running PostgreSQL server.
pub struct Postgres {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The uid and gid to run the server as: the `postgres` user when this
/// process is root, else `None` (run as ourselves).
fn server_user() -> Result<Option<(u32, u32)>, String> {
    let meta = std::fs::metadata("/proc/self").map_err(|e| e.to_string())?;
    if std::os::unix::fs::MetadataExt::uid(&meta) != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() > 3 && f[0] == "postgres" {
            let uid = f[2].parse().map_err(|_| "bad uid in /etc/passwd")?;
            let gid = f[3].parse().map_err(|_| "bad gid in /etc/passwd")?;
            return Ok(Some((uid, gid)));
        }
    }
    Err("running as root and there is no `postgres` user (scripts/services installs postgresql)".into())
}

fn as_user(cmd: &mut Command, user: Option<(u32, u32)>) {
    if let Some((uid, gid)) = user {
        cmd.gid(gid).uid(uid);
    }
}

fn chown_tree(path: &Path, user: Option<(u32, u32)>) -> std::io::Result<()> {
    let Some((uid, gid)) = user else { return Ok(()) };
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if path.is_dir() && !path.is_symlink() {
        for e in std::fs::read_dir(path)? {
            chown_tree(&e?.path(), user)?;
        }
    }
    Ok(())
}

/// `target/services/pg-template`: a cluster `initdb` made once.
fn template(user: Option<(u32, u32)>) -> Result<PathBuf, String> {
    let initdb = binary("initdb").ok_or("no initdb (run scripts/services)")?;
    let dir = repo_root().join("target/services/pg-template");
    if dir.join("PG_VERSION").exists() {
        return Ok(dir);
    }
    // Made aside and renamed, so that tests starting at once never see half
    // a template.
    let parent = repo_root().join("target/services");
    std::fs::create_dir_all(&parent).map_err(|e| e.to_string())?;
    let work = tempfile::Builder::new()
        .prefix("pg-template-")
        .tempdir_in(&parent)
        .map_err(|e| e.to_string())?;
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    let data = work.path().join("data");
    std::fs::create_dir(&data).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| e.to_string())?;
    chown_tree(&data, user).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(&initdb);
    cmd.arg("-D")
        .arg(&data)
        .args(["-U", USER, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
        .current_dir("/")
        .stdin(Stdio::null());
    as_user(&mut cmd, user);
    let out = cmd.output().map_err(|e| format!("initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    match std::fs::rename(&data, &dir) {
        Ok(()) => Ok(dir),
        // Another test made it first.
        Err(_) if dir.join("PG_VERSION").exists() => Ok(dir),
        Err(e) => Err(format!("template: {e}")),
    }
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)?;
        }
    }
    Ok(())
}

impl Postgres {
    /// Start a server on a copy of the template, or say why not.
    pub fn start() -> Result<Postgres, String> {
        let postgres = binary("postgres").ok_or("no postgres (run scripts/services)")?;
        let user = server_user()?;
        let template = template(user)?;
        for _ in 0..10 {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
                .map_err(|e| e.to_string())?;
            let data = dir.path().join("data");
            copy_tree(&template, &data).map_err(|e| format!("copying the template: {e}"))?;
            std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| e.to_string())?;
            chown_tree(&data, user).map_err(|e| e.to_string())?;
            let port = free_port();
            let log = std::fs::File::create(dir.path().join("server.log"))
                .map_err(|e| e.to_string())?;
            let mut cmd = Command::new(&postgres);
            cmd.arg("-D")
                .arg(&data)
                .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k"])
                .arg(&data)
                .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
                .args(["-c", "full_page_writes=off", "-c", "max_connections=300"])
                .current_dir("/")
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(|e| e.to_string())?)
                .stderr(log);
            as_user(&mut cmd, user);
            let mut child = cmd.spawn().map_err(|e| format!("starting postgres: {e}"))?;
            let t = Instant::now();
            let server = loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break None; // the port was taken: try another
                }
                if connect(port, "postgres").is_ok() {
                    break Some(());
                }
                if t.elapsed() > Duration::from_secs(30) {
                    let _ = child.kill();
                    let log = std::fs::read_to_string(dir.path().join("server.log"))
                        .unwrap_or_default();
                    return Err(format!("postgres did not start in 30 s: {log}"));
                }
                std::thread::sleep(Duration::from_millis(25));
            };
            if server.is_some() {
                return Ok(Postgres {
                    child,
                    port,
                    _dir: dir,
                });
            }
        }
        Err("postgres could not bind a free port in 10 tries".into())
    }

    /// A new empty database; its URL (`postgres://spinoff@127.0.0.1:PORT/NAME`).
    pub fn create_database(&self) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("app_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let mut c = connect(self.port, "postgres").expect("postgres answers");
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("CREATE DATABASE");
        self.url(&name)
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// A client (the `postgres` crate) on database `name`.
    pub fn client(&self, name: &str) -> postgres::Client {
        connect(self.port, name).expect("postgres answers")
    }

    /// SIGKILL the server: every connection is lost mid-statement.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(port: u16, db: &str) -> Result<postgres::Client, postgres::Error> {
    let mut config = postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user(USER)
        .dbname(db)
        .connect_timeout(Duration::from_secs(5));
    config.connect(postgres::NoTls)
}
