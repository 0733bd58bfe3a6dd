//! The console (`/console/`) in headless Chromium, driven through WebDriver
//! by tests/console/flow.py (Selenium, Debian's chromium and chromedriver,
//! installed by scripts/test): sign in, the branch tree (two branches, one
//! 2 deep), a record whose body is markup shown as text and run never, a
//! physical copy of 100 000 records followed to the end without a reload,
//! a copy canceled, a branch diffed and reset, the admin's tenant picker,
//! nothing of another tenant, and a narrow window. Screenshots go to
//! target/console-screenshots/. Also, over HTTP: what the page is served
//! with (its Content-Security-Policy), and the list routes it uses.

use std::process::Command;

use spinoff_e2e::*;

const XSS: &str = "<img src=x onerror=alert(1)>";

fn import(app: &App, h: &[(&str, &str)], r: &str, lines: &str) {
    let reply = app.request("POST", &format!("/data/v1/resources/{r}/import"), h, Some(lines.as_bytes()));
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn the_console_in_a_real_browser() {
    // The page and its script never touch storage; the data API routes it
    // calls run on the remote backends in their own suites (data_api.rs, …).
    if Backend::from_env() != Backend::Local {
        eprintln!("SKIPPED the console's browser test on a remote backend (sqld, PostgreSQL): it runs on local files under both runtimes");
        return;
    }
    let root = repo_root();
    let python = root.join("target/py-venv/bin/python");
    assert!(python.exists(), "{} is missing: scripts/test installs it", python.display());
    for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(std::path::Path::new(bin).exists(), "{bin} is missing: scripts/test installs Debian's chromium and chromium-driver");
    }
    // The worker runs on its own schedule, in small ticks, so a copy of
    // 100 000 records takes several and its bar has somewhere to move.
    let app = App::start_with(|o| {
        o.cron = true;
        o.variables.insert("worker_budget_ms".into(), "60".into());
    });
    let token = app.token("acme");
    let auth = format!("Bearer {token}");
    let h = [("authorization", auth.as_str())];

    // The page: served with a policy that runs only its own script.
    let page = app.get("/console/", &[]);
    assert_eq!(page.status, 200, "{}", page.body);
    let csp = page.header("content-security-policy").expect("a Content-Security-Policy");
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(app.get("/console", &[]).status, 308);
    assert_eq!(app.get("/console/app.js", &[]).header("content-type"), Some("text/javascript; charset=utf-8"));
    assert_eq!(app.get("/console/nope", &[]).status, 404);

    // acme: prod with a script-bearing record; dev and qa branch it, dev2
    // branches dev; dev changes k2. big: 100 000 records. globex: secret.
    assert_eq!(app.request("PUT", "/data/v1/resources/native:prod", &h, None).status, 201);
    let lines: String = (0..5)
        .map(|i| json!({"collection": "c", "key": format!("k{i}"), "body": {"i": i}}).to_string() + "\n")
        .chain(std::iter::once(json!({"collection": "c", "key": "xss", "body": XSS}).to_string() + "\n"))
        .collect();
    import(&app, &h, "native:prod", &lines);
    for (from, to) in [("native:prod", "native:dev"), ("native:prod", "native:qa"), ("native:dev", "native:dev2")] {
        let r = app.send_json("POST", &format!("/data/v1/resources/{from}/clones"), &h, &json!({"target": to}));
        assert_eq!(r.status, 202, "{}", r.body);
    }
    let r = app.request("PUT", "/data/v1/resources/native:dev/collections/c/records/k2", &h, Some(b"{\"dev\":2}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(app.request("PUT", "/data/v1/resources/native:big", &h, None).status, 201);
    for part in 0..2 {
        let lines: String = (part * 50_000..(part + 1) * 50_000)
            .map(|i| json!({"collection": "c", "key": format!("k{i:06}"), "body": {"i": i}}).to_string() + "\n")
            .collect();
        import(&app, &h, "native:big", &lines);
    }
    let other = app.token("globex");
    let oh = format!("Bearer {other}");
    assert_eq!(app.request("PUT", "/data/v1/resources/native:secret", &[("authorization", &oh)], None).status, 201);

    // The routes the page lists with: a tenant's own resources, parents named.
    let list = app.get("/data/v1/resources", &h).json();
    let refs: Vec<&str> = list["resources"].as_array().unwrap().iter().map(|r| r["ref"].as_str().unwrap()).collect();
    assert_eq!(refs, ["native:prod", "native:dev", "native:qa", "native:dev2", "native:big"], "{list}");
    let dev2 = list["resources"].as_array().unwrap().iter().find(|r| r["ref"] == "native:dev2").unwrap();
    assert_eq!((dev2["parent"].as_str(), dev2["branch"]["depth"].as_i64()), (Some("native:dev"), Some(2)), "{dev2}");
    assert_eq!(app.get("/data/v1/resources?limit=2", &h).json()["resources"].as_array().unwrap().len(), 2);
    assert_eq!(app.get("/data/v1/resources?limit=0", &h).status, 422);
    assert_eq!(app.get("/data/v1/tenants", &h).status, 401, "a tenant token lists no tenants");
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let t = app.get("/data/v1/tenants", &[("authorization", &admin)]).json();
    assert_eq!(t["tenants"], json!(["acme", "globex"]), "{t}");

    let shots = root.join("target/console-screenshots").join(app.runtime.name());
    let out = Command::new(&python)
        .arg(root.join("tests/console/flow.py"))
        .env("CONSOLE_BASE", &app.base)
        .env("CONSOLE_TOKEN", &token)
        .env("CONSOLE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SHOTS", &shots)
        .output()
        .expect("run tests/console/flow.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON report\nstdout: {stdout}\nstderr: {stderr}"));
    assert_eq!(report["ok"], true, "{report:#}\nstderr: {stderr}\nscreenshots: {}", shots.display());
    assert!(out.status.success(), "{report:#}");
    let checks = report["checks"].as_object().unwrap();
    assert!(checks.len() >= 20, "every check ran: {report:#}");
    for shot in ["tree", "record", "copy", "diff", "reset", "admin", "narrow"] {
        assert!(shots.join(format!("{shot}.png")).exists(), "screenshot {shot}");
    }
    // What the browser did went through the API: the copy is an
    // operation like any other, with its events; the reset is a reset.
    let ops = app.get("/data/v1/operations?per_page=100", &h).json();
    let copies: Vec<&Value> = ops["operations"].as_array().unwrap().iter().filter(|o| o["target"] == "native:bigcopy").collect();
    assert_eq!((copies.len(), copies[0]["status"].as_str(), copies[0]["mode"].as_str()), (1, Some("succeeded"), Some("copy")), "{ops}");
    let copied = app.get("/data/v1/resources/native:bigcopy", &h).json();
    assert_eq!(copied["collections"][0]["records"], 100_000, "{copied}");
    let k2 = app.get("/data/v1/resources/native:dev/collections/c/records/k2", &h).json();
    assert_eq!(k2["body"], json!({"i": 2}), "reset to the parent: {k2}");
}
