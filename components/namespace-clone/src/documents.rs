//! BYO documents, as Mixpeek's SDK sends them: upsert
//! (`POST /v1/namespaces/{id}/documents/upsert`), get
//! (`GET /v1/namespaces/{id}/documents/{document_id}`) and the lists,
//! namespace-scoped (`POST /v1/documents/list`) or of one collection
//! (`POST /v1/collections/{collection_id}/documents/list`), the namespace in
//! `X-Namespace`. A document is the record `points:<collection_id>/<document_id>`
//! (its body the document as sent, with `collection_id`): the records a
//! clone copies with `include_resources.collections` and the data API reads
//! as `mixpeek:<namespace_id>`.

use engine::{AsOf, Container, Engine, Write};
use serde_json::{json, Map, Value};
use spin_adapter::http::{within, Reply, Req};

use crate::namespaces::find;
use crate::{bad, error, fail, Caller, Ctx};

/// The collection of documents upserted without `collection_id`.
pub const DEFAULT_COLLECTION: &str = "col_default";
/// At most this many documents per upsert (Mixpeek's limit).
pub const MAX_UPSERT: usize = 1000;

const DOCUMENT_FIELDS: &[&str] = &[
    "document_id",
    "vectors",
    "payload",
    "metadata",
    "acl",
    "source_type",
    "root_object_id",
    "root_bucket_id",
    "source_object_id",
    "source_document_id",
    "source_collection_id",
    "lineage_path",
    "lineage_chain",
    "content_hash",
];

fn check_collection_id(id: &str) -> Result<(), Reply> {
    if !id.is_empty()
        && id.len() <= 100
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(())
    } else {
        Err(bad(&format!(
            "collection_id {id:?} must be 1 to 100 letters, digits, '_' or '-'"
        )))
    }
}

/// One `BYODocument`, checked; the stored body.
fn document(i: usize, v: &Value, collection: &str) -> Result<(String, Value), Reply> {
    let Value::Object(d) = v else {
        return Err(bad(&format!("documents[{i}] must be an object")));
    };
    if let Some(k) = d.keys().find(|k| !DOCUMENT_FIELDS.contains(&k.as_str())) {
        return Err(bad(&format!(
            "documents[{i}] has unknown field {k:?}; accepted: {}",
            DOCUMENT_FIELDS.join(", ")
        )));
    }
    let id = match d.get("document_id") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => s.clone(),
        _ => {
            return Err(bad(&format!(
                "documents[{i}].document_id is required: a string of 1 to 256 characters"
            )))
        }
    };
    if id.chars().any(char::is_control) {
        return Err(bad(&format!(
            "documents[{i}].document_id has a control character"
        )));
    }
    if !d.get("vectors").is_some_and(Value::is_object) {
        return Err(bad(&format!(
            "documents[{i}].vectors is required: an object of vector name to vector"
        )));
    }
    for k in ["payload", "metadata", "acl"] {
        if d.get(k).is_some_and(|x| !x.is_null() && !x.is_object()) {
            return Err(bad(&format!("documents[{i}].{k} must be an object")));
        }
    }
    let mut body: Map<String, Value> = d
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    body.insert("collection_id".into(), collection.into());
    Ok((id, Value::Object(body)))
}

/// `POST /v1/namespaces/{namespace_id}/documents/upsert` (`BYOUpsertRequest`
/// → `BYOUpsertResponse`). An existing `document_id` is replaced.
pub fn upsert(ctx: &Ctx, req: &Req, ident: &str) -> Result<Reply, Reply> {
    let tenant = ctx.tenant()?;
    /// Mixpeek's document upsert; any other field is refused.
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct UpsertRequest {
        collection_id: Option<String>,
        documents: Option<Vec<Value>>,
        /// Accepted and ignored.
        #[allow(dead_code)]
        options: Option<serde_json::Map<String, Value>>,
    }
    let b: UpsertRequest = spin_adapter::body::parse(&req.body, false).map_err(|e| bad(&e))?;
    let collection = b.collection_id.unwrap_or_else(|| DEFAULT_COLLECTION.to_string());
    check_collection_id(&collection)?;
    let docs = match &b.documents {
        Some(a) if !a.is_empty() && a.len() <= MAX_UPSERT => a,
        _ => {
            return Err(bad(&format!(
                "documents is required: a list of 1 to {MAX_UPSERT} documents"
            )))
        }
    };
    let mut ids = Vec::with_capacity(docs.len());
    let mut writes = Vec::with_capacity(docs.len());
    for (i, d) in docs.iter().enumerate() {
        let (id, body) = document(i, d, &collection)?;
        writes.push(Write::Put {
            collection: format!("points:{collection}"),
            key: id.clone(),
            body: body.to_string(),
        });
        ids.push(id);
    }
    let e = ctx.engine()?;
    let ns = find(&e, tenant, ident)?;
    e.write(&ns.family, tenant, &ns.name, &writes)
        .map_err(|er| error(&er))?;
    Ok(Reply::json(
        200,
        &json!({"inserted": ids.len(), "document_ids": ids, "dropped_payload_fields": {},
                "unsearchable_document_ids": [], "warnings": []}),
    ))
}

/// A stored point as Mixpeek's document: `document_id` and `collection_id`
/// always (records loaded through the data API may lack them), `vectors`
/// only when asked for.
fn as_document(collection: &str, key: &str, body: &str, vectors: bool) -> Value {
    let mut d = match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(m)) => m,
        Ok(other) => Map::from_iter([("payload".to_string(), other)]),
        Err(_) => Map::new(),
    };
    d.entry("document_id").or_insert_with(|| key.into());
    d.entry("collection_id")
        .or_insert_with(|| collection.trim_start_matches("points:").into());
    if !vectors {
        d.remove("vectors");
        d.remove("vector");
    }
    Value::Object(d)
}

/// The list's query parameters (`GET` and `POST` alike).
#[derive(serde::Deserialize)]
struct ListQuery {
    limit: Option<i64>,
    page_size: Option<i64>,
    offset: Option<i64>,
    page: Option<i64>,
    #[serde(default, deserialize_with = "spin_adapter::http::flag")]
    include_total: Option<bool>,
    #[serde(default, deserialize_with = "spin_adapter::http::flag")]
    return_vectors: Option<bool>,
}

/// The list's body (`POST /v1/namespaces/documents/list`): Mixpeek's
/// `ListDocumentsRequest` fields this family serves; any other is refused.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ListBody {
    collection_ids: Option<Vec<String>>,
    limit: Option<i64>,
    page_size: Option<i64>,
    offset: Option<i64>,
    include_total: Option<bool>,
    return_vectors: Option<bool>,
    /// Accepted and ignored (no object storage here).
    #[allow(dead_code)]
    return_presigned_urls: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    return_vector_names: Option<serde::de::IgnoredAny>,
}

/// `?return_vectors=` of a document read.
#[derive(serde::Deserialize)]
struct GetQuery {
    #[serde(default, deserialize_with = "spin_adapter::http::flag")]
    return_vectors: Option<bool>,
}

/// The namespace's document collections (`points:*`), by name.
fn point_collections(e: &Engine, ns: &Container) -> Result<Vec<String>, Reply> {
    Ok(e.collections(ns)
        .map_err(|er| error(&er))?
        .into_iter()
        .filter(|s| s.name.starts_with("points:") && s.records > 0)
        .map(|s| s.name)
        .collect())
}

/// `GET /v1/namespaces/{namespace_id}/documents/{document_id}[?return_vectors=true]`.
pub fn get(ctx: &Ctx, req: &Req, ident: &str, id: &str) -> Result<Reply, Reply> {
    let tenant = ctx.tenant()?;
    let vectors = req
        .query_as::<GetQuery>()
        .map_err(|e| bad(&e))?
        .return_vectors
        .unwrap_or(false);
    let e = ctx.engine()?;
    let ns = find(&e, tenant, ident)?;
    for c in point_collections(&e, &ns)? {
        match e.get(&ns, &c, id, AsOf::Head) {
            Ok(v) => {
                let body = v.body.unwrap_or_default();
                return Ok(Reply::json(200, &as_document(&c, id, &body, vectors)));
            }
            // Not in this collection; a storage error is an error.
            Err(er) if er.kind == engine::ErrorKind::NotFound => {}
            Err(er) => return Err(error(&er)),
        }
    }
    Err(fail(
        404,
        "not_found",
        &format!("document {id:?} not found in namespace {:?}", ns.name),
    ))
}

/// `POST /v1/documents/list` (`NamespaceListDocumentsRequest` →
/// `ListDocumentsResponse`): the namespace named by `X-Namespace`, its
/// documents ordered by collection then id, offset-paged (`limit` or
/// `page_size` up to 1000, `offset` up to 10 000, or `page`).
pub fn list(ctx: &Ctx, req: &Req) -> Result<Reply, Reply> {
    list_in(ctx, req, None)
}

/// `POST /v1/collections/{collection_id}/documents/list` (the wrapper's
/// `documents.list`): the same list, of one collection.
pub fn list_collection(ctx: &Ctx, req: &Req, collection: &str) -> Result<Reply, Reply> {
    check_collection_id(collection)?;
    list_in(ctx, req, Some(collection))
}

fn list_in(ctx: &Ctx, req: &Req, only: Option<&str>) -> Result<Reply, Reply> {
    let tenant = ctx.tenant()?;
    let ident = req
        .header("x-namespace")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("send the namespace's id or name in the X-Namespace header"))?
        .to_string();
    let q: ListQuery = req.query_as().map_err(|e| bad(&e))?;
    // The body's keys (a null one counts as absent); the query wins.
    let mut m = spin_adapter::body::object(&req.body, true).map_err(|e| bad(&e))?;
    m.retain(|_, v| !v.is_null());
    let b: ListBody = spin_adapter::body::from_map(m).map_err(|e| bad(&e))?;
    let range = |k: &str, v: Option<i64>, lo: i64, hi: i64| -> Result<Option<i64>, Reply> {
        v.map(|n| within(k, n, lo, hi)).transpose().map_err(|e| bad(&e))
    };
    let limit = match (
        range("limit", q.limit.or(b.limit), 1, 1000)?,
        range("page_size", q.page_size.or(b.page_size), 1, 1000)?,
    ) {
        (Some(l), _) | (None, Some(l)) => l,
        (None, None) => 10,
    };
    let page = range("page", q.page, 1, 10_000)?;
    let offset = match (range("offset", q.offset.or(b.offset), 0, 10_000)?, page) {
        (Some(o), _) => o,
        (None, Some(p)) => (p - 1) * limit,
        (None, None) => 0,
    };
    if offset > 10_000 {
        return Err(bad("page goes past offset 10000; narrow the list"));
    }
    let vectors = q.return_vectors.or(b.return_vectors).unwrap_or(false);
    let include_total = q.include_total.or(b.include_total).unwrap_or(false);
    let wanted: Option<Vec<String>> = b
        .collection_ids
        .map(|ids| ids.iter().map(|s| format!("points:{s}")).collect());
    let wanted = match only {
        Some(c) => Some(vec![format!("points:{c}")]),
        None => wanted,
    };
    let e = ctx.engine()?;
    let ns = find(&e, tenant, &ident)?;
    let stats = e.collections(&ns).map_err(|er| error(&er))?;
    let collections: Vec<(String, i64)> = stats
        .into_iter()
        .filter(|s| s.name.starts_with("points:") && s.records > 0)
        .filter(|s| wanted.as_ref().is_none_or(|w| w.contains(&s.name)))
        .map(|s| (s.name, s.records))
        .collect();
    let total: i64 = collections.iter().map(|(_, n)| n).sum();
    // Skip whole collections by their counts, then page through the rest.
    let mut skip = offset;
    let mut results = Vec::new();
    for (c, n) in &collections {
        if results.len() as i64 >= limit {
            break;
        }
        if skip >= *n {
            skip -= n;
            continue;
        }
        let mut after: Option<String> = None;
        loop {
            let page = e
                .list(&ns, c, after.as_deref(), 1000, AsOf::Head)
                .map_err(|er| error(&er))?;
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            for v in &page {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                if results.len() as i64 >= limit {
                    break;
                }
                let body = v.body.clone().unwrap_or_default();
                results.push(as_document(c, &v.key, &body, vectors));
            }
            if results.len() as i64 >= limit || page.len() < 1000 {
                break;
            }
        }
    }
    let next = offset + (results.len() as i64);
    let more = next < total;
    let page_no = offset / limit + 1;
    let known = |v: Value| if include_total { v } else { Value::Null };
    Ok(Reply::json(
        200,
        &json!({
            "results": results,
            "pagination": {
                "total": known(total.into()),
                "page": page_no,
                "page_size": limit,
                "total_pages": known(((total + limit - 1) / limit).into()),
                "next_page": if more { Value::from(format!("/v1/documents/list?offset={next}&limit={limit}")) } else { Value::Null },
                "previous_page": if offset > 0 { Value::from(format!("/v1/documents/list?offset={}&limit={limit}", (offset - limit).max(0))) } else { Value::Null },
                "next_cursor": Value::Null,
            },
            "total_documents": known(total.into()),
        }),
    ))
}
