//! What every figure does with the app: load a source through one import
//! session, settle the worker, clone with ticks, export; checksums and
//! on-disk sizes to check and weigh the results.

use std::time::{Duration, Instant};

use spinoff_e2e::*;

/// The app under measurement and the tenant's credential.
pub struct Ctx<'a> {
    pub app: &'a App,
    pub auth: String,
}

impl Ctx<'_> {
    pub fn h(&self) -> [(&str, &str); 1] {
        [("authorization", self.auth.as_str())]
    }
    /// Create `native:{name}` and import `n` records into it through one
    /// import session (requests of 20 000 lines, then one commit: all or
    /// nothing), then tick the worker until the import is hydrated and its
    /// staging purged. Returns (time to the commit's answer, time from it
    /// until the worker had nothing left to do).
    pub fn load(&self, name: &str, n: usize) -> (Duration, Duration) {
        assert_eq!(
            self.app
                .send_json(
                    "PUT",
                    &format!("/data/v1/resources/native:{name}"),
                    &self.h(),
                    &json!({})
                )
                .status,
            201
        );
        let pad = "x".repeat(960);
        let t = Instant::now();
        let session = self.app.request(
            "POST",
            &format!("/data/v1/resources/native:{name}/imports"),
            &self.h(),
            None,
        );
        assert_eq!(session.status, 201, "{}", session.body);
        let id = session.json()["id"].as_str().unwrap().to_string();
        for start in (0..n).step_by(20_000) {
            let lines: String = (start..(start + 20_000).min(n))
                .map(|i| format!("{}\n", json!({"collection": (["c0", "c1", "c2", "c3"][i % 4]), "key": format!("k{i:08}"), "body": {"i": i, "pad": pad}})))
                .collect();
            let r = self.app.request(
                "POST",
                &format!("/data/v1/resources/native:{name}/imports/{id}/lines"),
                &self.h(),
                Some(lines.as_bytes()),
            );
            assert_eq!(r.status, 200, "{}", r.body);
        }
        let r = self.app.request(
            "POST",
            &format!("/data/v1/resources/native:{name}/imports/{id}/commit"),
            &self.h(),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["imported"], n as i64, "{}", r.body);
        let committed = t.elapsed();
        let t = Instant::now();
        self.settle();
        (committed, t.elapsed())
    }
    /// Tick the worker until it has nothing left to do: no chunk to run
    /// (an import's hydration) and nothing to purge (its staging), so the
    /// next figure measures only its own work.
    ///
    /// On PostgreSQL it then vacuums `records`: the import and purge leave
    /// millions of dead rows, and autovacuum's pass over them (tens of
    /// seconds on 2 cores) would otherwise land in whichever figure comes
    /// next, on one side of its ratio only (a copy of 1 000 000 records
    /// measured 0.97 and 0.36 of the native statement in two runs of the
    /// same code).
    pub fn settle(&self) {
        loop {
            let v = self.app.tick_report().unwrap();
            if v["steps"] == 0 && v["purged_records"] == 0 {
                break;
            }
        }
        let db = self.app.database();
        if engine::Db::dialect(&*db) == engine::Dialect::Postgres {
            engine::Db::execute(&*db, "VACUUM (ANALYZE) records", &[]).expect("VACUUM records");
        }
    }
    pub fn clone_with_ticks(
        &self,
        src: &str,
        dst: &str,
        history: bool,
    ) -> (Duration, Vec<Duration>, Value) {
        let op = self
            .app
            .send_json(
                "POST",
                &format!("/data/v1/resources/native:{src}/clones"),
                &self.h(),
                &json!({"target": format!("native:{dst}"), "history": history, "mode": "copy"}),
            )
            .json();
        let id = op["id"].as_str().unwrap().to_string();
        let start = Instant::now();
        let mut ticks = Vec::new();
        loop {
            let t = Instant::now();
            self.app.tick().unwrap();
            ticks.push(t.elapsed());
            let v = self
                .app
                .get(&format!("/data/v1/operations/{id}"), &self.h())
                .json();
            if v["status"] == "succeeded" {
                chunk_report(self.app, &id, ticks.len());
                return (start.elapsed(), ticks, v);
            }
            assert!(v["status"] != "failed", "{v}");
        }
    }
    /// Branch `native:{src}` into `native:{target}` (ready when the
    /// request returns).
    pub fn branch(&self, src: &str, target: &str) {
        let op = self
            .app
            .send_json(
                "POST",
                &format!("/data/v1/resources/native:{src}/clones"),
                &self.h(),
                &json!({"target": format!("native:{target}")}),
            )
            .json();
        assert_eq!(op["status"], "succeeded", "{op}");
    }
    pub fn export(&self, name: &str, as_of: Option<i64>) -> Vec<String> {
        let q = as_of.map(|l| format!("?as_of={l}")).unwrap_or_default();
        let r = self.app.get(
            &format!("/data/v1/resources/native:{name}/export{q}"),
            &self.h(),
        );
        assert_eq!(r.status, 200);
        r.body.lines().map(String::from).collect()
    }
}

pub fn checksum(lines: &[String]) -> u64 {
    let mut v: Vec<&String> = lines.iter().collect();
    v.sort();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for l in v {
        for b in l.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

/// last chunk size) and how many ticks drove it.
pub fn chunk_report(app: &App, id: &str, ticks: usize) {
    let db = app.database();
    let row = engine::Db::execute(
        &*db,
        "SELECT kind, steps, copy_us, chunk_size, records_copied FROM operations WHERE id = ?1",
        &[id.into()],
    )
    .unwrap();
    let r = &row[0];
    eprintln!(
        "bench: {} {id}: {} records in {} steps, {:.0} ms inside chunks, last chunk size {}, {ticks} ticks",
        r.text(0).unwrap(),
        r.i64(4).unwrap(),
        r.i64(1).unwrap(),
        r.i64(2).unwrap() as f64 / 1e3,
        r.i64(3).unwrap()
    );
}

/// Bytes of every file under `dir`.
pub fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => dir_size(&e.path()),
                    _ => e.metadata().map(|m| m.len()).unwrap_or(0),
                })
                .sum()
        })
        .unwrap_or(0)
}
