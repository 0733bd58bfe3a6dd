//! Datasets: containers of family `sanity` named `<projectId>:<dataset>`.

use serde_json::{json, Value};
use spin_adapter::http::{Reply, Req};

use crate::{bad, error, fail, Ctx, FAMILY};

/// Sanity's rule: 1–64 of lowercase letters, digits, `_` and `-`, starting
/// with a letter or digit.
pub fn check_dataset_name(name: &str) -> Result<(), Reply> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(bad(&format!("dataset name {name:?} is invalid: use 1 to 64 lowercase letters, digits, '_' and '-', starting with a letter or a digit")))
    }
}

pub fn check_project(p: &str) -> Result<(), Reply> {
    if !p.is_empty()
        && p.len() <= 64
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(bad(&format!("project id {p:?} is invalid")))
    }
}

/// The project a host name names, if any: `<projectId>.<api host>`, as
/// Sanity's clients address a project (`useProjectHostname`). With
/// `api_host` (the Spin variable `sanity_api_host`), exactly one label in
/// front of it; without, the first label of a name of three or more labels
/// (`p1.api.example.com`), or of `<p>.localhost`, unless it is `api` or
/// `www`. IP addresses and bare names name none.
pub fn project_in_host(host: &str, api_host: Option<&str>) -> Option<String> {
    if host.starts_with('[') {
        return None; // an IPv6 literal
    }
    let name = host.split(':').next().unwrap_or("").trim_end_matches('.');
    if name.is_empty() {
        return None;
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels
        .iter()
        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
    {
        return None; // an IPv4 address
    }
    let first = match api_host
        .map(|a| a.trim().trim_end_matches('.'))
        .filter(|a| !a.is_empty())
    {
        Some(api) => {
            let api = api.split(':').next().unwrap_or(api);
            let rest = name.len().checked_sub(api.len() + 1)?;
            if !name[rest + 1..].eq_ignore_ascii_case(api) || name.as_bytes()[rest] != b'.' {
                return None;
            }
            let label = &name[..rest];
            if label.contains('.') {
                return None;
            }
            label
        }
        None => {
            let localhost = labels.len() == 2 && labels[1].eq_ignore_ascii_case("localhost");
            if labels.len() < 3 && !localhost {
                return None;
            }
            if labels[0].eq_ignore_ascii_case("api") || labels[0].eq_ignore_ascii_case("www") {
                return None;
            }
            labels[0]
        }
    };
    (!first.is_empty()).then(|| first.to_string())
}

/// The project a request addresses when its path has none: the one its
/// host name names (see [`project_in_host`]), else the tenant's only
/// project. The handler then checks the tenant may use it (404 if not).
pub fn project_of(ctx: &Ctx, req: &Req) -> Result<String, Reply> {
    let api_host = spin_adapter::vars::variable("sanity_api_host");
    if let Some(p) = req
        .host()
        .and_then(|h| project_in_host(h, api_host.as_deref()))
    {
        return Ok(p);
    }
    let e = ctx.engine()?;
    let owned = e
        .list_owned("sanity-project", &ctx.tenant, None)
        .map_err(|er| error(&er))?;
    match owned.as_slice() {
        [one] => Ok(one.name.clone()),
        _ => Err(bad("this request names no project: use /projects/{projectId}/… in the path or a {projectId}.<host> host name \
             (the token's project is only implied when its tenant owns exactly one project)")),
    }
}

pub fn container_name(p: &str, name: &str) -> String {
    format!("{p}:{name}")
}

pub fn project(ctx: &Ctx, e: &engine::Engine, p: &str) -> Result<(), Reply> {
    check_project(p)?;
    e.claim_owned("sanity-project", p, &ctx.tenant)
        .map(|_| ())
        .map_err(|_| fail(404, "Not Found", &format!("project {p} not found")))
}

pub fn acl(c: &engine::Container) -> Value {
    c.spec
        .get("aclMode")
        .cloned()
        .unwrap_or_else(|| "public".into())
}

/// `PUT /projects/{p}/datasets/{name}` `{"aclMode"}`.
pub fn create(ctx: &Ctx, req: &Req, p: &str, name: &str) -> Result<Reply, Reply> {
    check_dataset_name(name)?;
    /// Sanity's dataset request (other fields are ignored).
    #[derive(serde::Deserialize)]
    struct DatasetRequest {
        #[serde(rename = "aclMode")]
        acl_mode: Option<AclMode>,
    }
    #[derive(serde::Deserialize, Clone, Copy)]
    #[serde(rename_all = "lowercase")]
    enum AclMode {
        Public,
        Private,
        Custom,
    }
    let b: DatasetRequest = spin_adapter::body::parse(&req.body, true).map_err(|e| bad(&e))?;
    let acl = match b.acl_mode.unwrap_or(AclMode::Public) {
        AclMode::Public => "public",
        AclMode::Private => "private",
        AclMode::Custom => "custom",
    };
    let e = ctx.engine()?;
    project(ctx, &e, p)?;
    e.create_container(
        FAMILY,
        &ctx.tenant,
        &container_name(p, name),
        &json!({"aclMode": acl, "projectId": p}),
    )
    .map_err(|er| match er.kind {
        engine::ErrorKind::AlreadyExists => {
            fail(409, "Conflict", &format!("dataset {name:?} already exists"))
        }
        _ => error(&er),
    })?;
    Ok(Reply::json(
        200,
        &json!({"datasetName": name, "aclMode": acl}),
    ))
}

/// `GET /projects/{p}/datasets` → `[{name, aclMode}]`.
pub fn list(ctx: &Ctx, p: &str) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    project(ctx, &e, p)?;
    let prefix = format!("{p}:");
    let all = e
        .list_containers(FAMILY, &ctx.tenant, 0, 1000)
        .map_err(|er| error(&er))?;
    let list: Vec<Value> = all
        .iter()
        .filter_map(|c| {
            c.name
                .strip_prefix(&prefix)
                .map(|n| json!({"name": n, "aclMode": acl(c)}))
        })
        .collect();
    Ok(Reply::json(200, &Value::Array(list)))
}

pub fn delete(ctx: &Ctx, p: &str, name: &str) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    project(ctx, &e, p)?;
    e.delete_container(FAMILY, &ctx.tenant, &container_name(p, name))
        .map_err(|er| error(&er))?;
    Ok(Reply::json(
        200,
        &json!({"deleted": true, "datasetName": name}),
    ))
}

/// `GET /aliases`: a project's dataset aliases. Spinoff has none; the CLI's
/// `dataset list` prints them after the datasets.
pub fn aliases(ctx: &Ctx, p: &str) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    project(ctx, &e, p)?;
    Ok(Reply::json(200, &json!([])))
}

/// `GET /features`: the project's plan features, as Sanity names them. The
/// CLI's `dataset create` reads `privateDataset` to offer private datasets.
pub fn features(ctx: &Ctx, p: &str) -> Result<Reply, Reply> {
    let e = ctx.engine()?;
    project(ctx, &e, p)?;
    Ok(Reply::json(200, &json!(["privateDataset"])))
}

#[cfg(test)]
mod tests {
    use super::project_in_host;

    #[test]
    fn a_host_names_a_project_by_its_first_label() {
        let p = |h: &str| project_in_host(h, None);
        assert_eq!(p("p1.api.example.com").as_deref(), Some("p1"));
        assert_eq!(p("p1.api.example.com:8443").as_deref(), Some("p1"));
        assert_eq!(p("p1.localhost:3000").as_deref(), Some("p1"));
        assert_eq!(p("p1.spinoff.test:3000").as_deref(), Some("p1"));
        for none in [
            "api.example.com",
            "www.example.com",
            "example.com",
            "localhost:3000",
            "127.0.0.1:3000",
            "[::1]:3000",
            "",
            "spinoff.test:80",
        ] {
            assert_eq!(p(none), None, "{none}");
        }
        let q = |h: &str| project_in_host(h, Some("sanity.acme.dev"));
        assert_eq!(q("p1.sanity.acme.dev:443").as_deref(), Some("p1"));
        assert_eq!(q("P1.SANITY.acme.dev").as_deref(), Some("P1"));
        assert_eq!(q("sanity.acme.dev"), None);
        assert_eq!(q("a.b.sanity.acme.dev"), None);
        assert_eq!(q("p1.other.dev"), None);
        assert_eq!(q("xsanity.acme.dev"), None);
    }
}
