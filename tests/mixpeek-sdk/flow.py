"""Drive Spinoff's Mixpeek family with Mixpeek's official Python SDK, unchanged.

Environment: MIXPEEK_BASE (the app, e.g. http://127.0.0.1:3000), MIXPEEK_API_KEY
(a tenant token), SPINOFF_ADMIN_TOKEN (only to fire the worker, standing in
for cron: POST /internal/worker/tick is not part of the SDK flow).

Prints one JSON object: every check's outcome under "checks" and "ok": true
when all passed; exits 1 otherwise. tests/e2e/tests/mixpeek_sdk.rs runs it.
"""

import json
import os
import sys
import traceback
import urllib.request

import mixpeek
from mixpeek import (
    ApiException,
    BYODocument,
    BYOUpsertRequest,
    BYODocumentsApi,
    CloneNamespaceRequest,
    Configuration,
    CreateNamespaceRequest,
    DocumentsApi,
    Mixpeek,
    NamespaceCloneApi,
    NamespacesApi,
    TasksApi,
    VectorsValue,
)
from mixpeek._client.client import MixpeekAPIError
from mixpeek.exceptions import BadRequestException, NotFoundException

BASE = os.environ["MIXPEEK_BASE"].rstrip("/")
KEY = os.environ["MIXPEEK_API_KEY"]
ADMIN = os.environ["SPINOFF_ADMIN_TOKEN"]

checks = {}


def check(name, cond, detail=None):
    checks[name] = {"ok": bool(cond), "detail": detail}
    if not cond:
        raise AssertionError(f"{name}: {detail}")


def tick():
    req = urllib.request.Request(
        f"{BASE}/internal/worker/tick",
        method="POST",
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def docs_of(byo, ns, ids):
    """Each document as get returns it (vectors included), by id."""
    return {i: byo.get_document_byo_namespaces(ns, i, return_vectors=True) for i in ids}


def wait_task(tasks, task_id):
    for _ in range(200):
        t = tasks.get_task(task_id)
        if t.status.value not in ("PENDING", "IN_PROGRESS", "QUEUED", "PROCESSING"):
            return t
        tick()
    raise AssertionError(f"task {task_id} never ended")


def main():
    out = {"sdk_version": mixpeek.__version__ if hasattr(mixpeek, "__version__") else None}
    # --- the typed API -----------------------------------------------------
    cfg = Configuration(host=BASE, access_token=KEY)
    client = mixpeek.ApiClient(cfg)
    namespaces = NamespacesApi(client)
    cloner = NamespaceCloneApi(client)
    tasks = TasksApi(client)
    byo = BYODocumentsApi(client)

    src = namespaces.create_namespace(
        CreateNamespaceRequest(
            namespace_name="sdk_production",
            description="made by the SDK",
            feature_extractors=[{"feature_extractor_name": "text_extractor", "version": "v1"}],
        )
    )
    check("create: ready at once", src.namespace_ready is True, src.namespace_ready)
    check("create: never cloned", src.clone_status is None and src.source_namespace_id is None)
    src_id = src.namespace_id

    ids = [f"doc_{i}" for i in range(25)]
    up = byo.upsert_documents_byo_namespaces(
        src_id,
        BYOUpsertRequest(
            collection_id="col_articles",
            documents=[
                BYODocument(
                    document_id=i,
                    vectors={"text": VectorsValue([n / 10.0, 0.5, 1.0])},
                    payload={"title": f"article {n}", "n": n},
                    metadata={"lang": "en"},
                )
                for n, i in enumerate(ids)
            ],
        ),
    )
    check("upsert: typed", up.inserted == 25 and up.document_ids == ids, up.to_dict())
    one = byo.get_document_byo_namespaces(src_id, "doc_3", return_vectors=True)
    check(
        "get: typed",
        one["payload"]["title"] == "article 3" and one["vectors"]["text"] == [0.3, 0.5, 1.0],
        one,
    )
    got = namespaces.get_namespace(src_id)
    check("source counts its documents", got.document_count == 25, got.document_count)

    # Clone with the typed API: the request carries "mode": "copy" by default.
    req = CloneNamespaceRequest(namespace_name="sdk_staging")
    check("typed clone sends mode copy", req.to_dict().get("mode") == "copy", req.to_dict())
    r = cloner.clone_namespace(src_id, req)
    check("clone: accepted", r.status == "cloning" and r.task_id, r.to_dict())
    check("clone: source named", r.source_namespace_id == src_id)
    staging = r.namespace.namespace_id
    t = wait_task(tasks, r.task_id)
    check("clone task completed", t.status.value == "COMPLETED", t.to_dict())
    ns = namespaces.get_namespace(staging)
    check(
        "clone: namespace_ready",
        ns.namespace_ready is True and ns.clone_status == "ready",
        {"namespace_ready": ns.namespace_ready, "clone_status": ns.clone_status},
    )
    check("clone: source_namespace_id", ns.source_namespace_id == src_id, ns.source_namespace_id)
    check("clone: documents counted", ns.document_count == 25, ns.document_count)
    check("clone: documents equal", docs_of(byo, staging, ids) == docs_of(byo, src_id, ids))
    listed = DocumentsApi(client).list_documents_ns(
        limit=100, _headers={"X-Namespace": staging}
    )
    check(
        "clone: documents listed (typed)",
        sorted(d.document_id for d in listed.results) == sorted(ids)
        and all(d.collection_id == "col_articles" for d in listed.results),
        listed.to_dict(),
    )

    # mode "branch" (the service's default; the typed model sends "copy"
    # unless told): a copy-on-write fork, ready when the clone answers.
    before = docs_of(byo, src_id, ids)
    b = cloner.clone_namespace(src_id, CloneNamespaceRequest(namespace_name="sdk_branch", mode="branch"))
    check("branch: ready at once", b.status == "ready" and b.task_id, b.to_dict())
    bt = tasks.get_task(b.task_id)
    check("branch: task completed at once", bt.status.value == "COMPLETED", bt.to_dict())
    branch = b.namespace.namespace_id
    check("branch: documents equal", docs_of(byo, branch, ids) == before)
    # A write to the source afterwards never shows in the branch.
    byo.upsert_documents_byo_namespaces(
        src_id,
        BYOUpsertRequest(
            collection_id="col_articles",
            documents=[
                BYODocument(
                    document_id="doc_0",
                    vectors={"text": VectorsValue([9.0, 9.0, 9.0])},
                    payload={"title": "rewritten", "n": 0},
                )
            ],
        ),
    )
    check(
        "branch: later source writes hidden",
        docs_of(byo, branch, ids) == before and docs_of(byo, src_id, ids) != before,
    )
    # ttl_seconds: accepted, the namespace says when it expires.
    r = cloner.clone_namespace(src_id, CloneNamespaceRequest(namespace_name="sdk_temp", ttl_seconds=3600))
    temp = namespaces.get_namespace(r.namespace.namespace_id)
    check("ttl accepted", temp.expires_at is not None, str(temp.expires_at))
    wait_task(tasks, r.task_id)
    # A bad request raises the SDK's own exception type (400, Mixpeek's shape).
    try:
        cloner.clone_namespace(src_id, CloneNamespaceRequest(namespace_name="x" * 65))
        check("bad request raises", False, "accepted")
    except BadRequestException as e:
        body = json.loads(e.body)
        check("bad request raises", body["error"]["type"] and "64" in body["error"]["message"], body)
    # Below the TTL floor, sent past the SDK's own check (it validates ge=60).
    raw = {"namespace_name": "sdk_short", "ttl_seconds": 59}
    resp = client.call_api(
        *client.param_serialize(
            method="POST",
            resource_path="/v1/namespaces/{id}/clone",
            path_params={"id": src_id},
            header_params={"Content-Type": "application/json"},
            body=raw,
            auth_settings=["BearerAuth"],
        )
    )
    resp.read()
    body = json.loads(resp.data)
    check("ttl below 60 refused", resp.status == 400 and "ttl_seconds" in body["error"]["message"], body)

    # --- the wrapper -------------------------------------------------------
    mp = Mixpeek(api_key=KEY, base_url=f"{BASE}/v1")
    w = mp.namespaces.create(
        name="sdk_wrapped",
        feature_extractors=[{"feature_extractor_name": "text_extractor", "version": "v1"}],
    )
    check("wrapper: create", w.namespace_ready is True, w)
    wid = w.namespace_id
    up = mp.namespaces.documents.upsert(
        namespace_id=wid,
        documents=[{"document_id": i, "vectors": {"text": [1.0, 2.0]}, "payload": {"i": i}} for i in ids[:5]],
    )
    check("wrapper: upsert", up.inserted == 5, up)
    c = mp.namespaces.clone(wid, namespace_name="sdk_wrapped_copy")
    # The wrapper sends no mode: a branch, ready when the clone answers.
    check("wrapper: clone ready at once", c.status == "ready", c)
    task = mp.tasks.get(c.task_id)
    check("wrapper: task completed", task.status == "COMPLETED", task)
    copy = mp.namespaces.get(c.namespace.namespace_id)
    check("wrapper: clone ready", copy.namespace_ready is True and copy.source_namespace_id == wid, copy)
    scoped = Mixpeek(api_key=KEY, base_url=f"{BASE}/v1", namespace=copy.namespace_id)
    listed = scoped.documents.list("col_default")
    check(
        "wrapper: clone's documents listed",
        sorted(d.document_id for d in listed.results) == ids[:5],
        listed,
    )
    try:
        mp.buckets.list()  # Spinoff has no buckets route: an unmatched route
        check("unmatched route raises MixpeekAPIError", False, "answered")
    except MixpeekAPIError as e:
        check(
            "unmatched route raises MixpeekAPIError",
            e.status == 404 and e.detail["error"]["type"] == "not_found",
            {"status": e.status, "detail": e.detail},
        )
    try:
        mp.tasks.list()  # POST /v1/tasks/list: the path exists for GET/DELETE only
        check("405 raises MixpeekAPIError", False, "answered")
    except MixpeekAPIError as e:
        check("405 raises MixpeekAPIError", e.status in (404, 405), {"status": e.status, "detail": e.detail})
    try:
        Mixpeek(api_key="not-a-key", base_url=f"{BASE}/v1").namespaces.list()
        check("401 raises MixpeekAPIError", False, "answered")
    except MixpeekAPIError as e:
        check("401 raises MixpeekAPIError", e.status == 401, e.detail)
    # --- delete --------------------------------------------------------------
    for n in (staging, branch, temp.namespace_id, copy.namespace_id, wid):
        mp.namespaces.delete(n)
    namespaces.delete_namespace(src_id)
    try:
        namespaces.get_namespace(src_id)
        check("deleted", False, "still there")
    except NotFoundException:
        check("deleted", True)
    out["ok"] = True
    return out


if __name__ == "__main__":
    try:
        result = main()
    except Exception as e:  # noqa: BLE001 - report every failure as JSON
        result = {"ok": False, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}
    result["checks"] = checks
    print(json.dumps(result, default=str))
    sys.exit(0 if result.get("ok") else 1)
