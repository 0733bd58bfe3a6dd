//! Figure 2: a clone against doing it by hand — export the source through
//! the data API and import the lines into a new resource.

use std::time::{Duration, Instant};

use spinoff_e2e::*;

use crate::harness::{checksum, Ctx};

/// Export `src` at `snapshot` and import it into `manual{n}`; check the
/// result; print it against the clone's `took`. Returns the time taken
/// and the exported lines.
pub fn versus_clone(
    ctx: &Ctx,
    name: &str,
    n: usize,
    src: &str,
    snapshot: i64,
    took: Duration,
    after_export: impl FnOnce(),
) -> (Duration, Vec<String>) {
    let app = ctx.app;
    let t = Instant::now();
    let lines = ctx.export(src, Some(snapshot));
    after_export();
    assert_eq!(
        app.send_json(
            "PUT",
            &format!("/data/v1/resources/native:manual{n}"),
            &ctx.h(),
            &json!({})
        )
        .status,
        201
    );
    for chunk in lines.chunks(20_000) {
        let body = chunk.join("\n");
        let r = app.request(
            "POST",
            &format!("/data/v1/resources/native:manual{n}/import"),
            &ctx.h(),
            Some(body.as_bytes()),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let manual = t.elapsed();
    // The import's requests over 2 000 lines were staged: their
    // hydration and purge run now, outside every timed figure.
    ctx.settle();
    assert_eq!(
        checksum(&ctx.export(&format!("manual{n}"), None)),
        checksum(&lines)
    );
    println!(
        "| {name} | {n} | clone vs export+import (s) | {:.2} | {:.2} | {:.1}× faster |",
        took.as_secs_f64(),
        manual.as_secs_f64(),
        manual.as_secs_f64() / took.as_secs_f64()
    );

    (manual, lines)
}
