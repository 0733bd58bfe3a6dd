//! The migrations, in order: each moves the schema from version `i` to
//! `i + 1` (the DDL of every table; `migrate` in `mod.rs` applies them).

/// Each entry moves the schema from version `i` to `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the whole first schema.
    r#"
    -- One row per committed record write (batch): the global LSN clock.
    -- AUTOINCREMENT: an LSN is never reused, even after pruning.
    CREATE TABLE lsns (
        lsn          INTEGER PRIMARY KEY AUTOINCREMENT,
        committed_at INTEGER NOT NULL           -- µs since epoch, never decreasing
    );
    CREATE INDEX lsns_time ON lsns (committed_at, lsn);

    CREATE TABLE containers (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        family      TEXT NOT NULL,
        tenant      TEXT NOT NULL,
        name        TEXT NOT NULL,
        spec        TEXT NOT NULL,              -- vendor JSON
        state       TEXT NOT NULL,              -- ready | cloning | failed
        head_lsn    INTEGER NOT NULL DEFAULT 0, -- newest LSN written here
        floor_lsn   INTEGER NOT NULL DEFAULT 0, -- history before it is pruned
        floor_at    INTEGER NOT NULL,           -- PITR works from this time
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        deleting    INTEGER NOT NULL DEFAULT 0  -- 1: gone for readers, purged in chunks
    );
    CREATE UNIQUE INDEX containers_name ON containers (family, tenant, name) WHERE deleting = 0;
    CREATE INDEX containers_tenant ON containers (tenant, family, created_at) WHERE deleting = 0;
    CREATE INDEX containers_deleting ON containers (id) WHERE deleting = 1;

    -- Every version of every record. The key order (container, collection,
    -- key, lsn) makes a latest/as-of read one index seek and a copy chunk a
    -- range scan.
    CREATE TABLE records (
        container  INTEGER NOT NULL,
        collection TEXT NOT NULL,
        key        TEXT NOT NULL,
        lsn        INTEGER NOT NULL,
        deleted    INTEGER NOT NULL,
        body       TEXT,                        -- JSON; NULL for a deletion
        size       INTEGER NOT NULL,
        PRIMARY KEY (container, collection, key, lsn)
    ) WITHOUT ROWID;

    -- Live records and all versions per collection, kept in the same
    -- transactions that change records.
    CREATE TABLE collection_stats (
        container     INTEGER NOT NULL,
        collection    TEXT NOT NULL,
        records       INTEGER NOT NULL,
        bytes         INTEGER NOT NULL,
        versions      INTEGER NOT NULL,
        version_bytes INTEGER NOT NULL,
        PRIMARY KEY (container, collection)
    ) WITHOUT ROWID;

    CREATE TABLE snapshots (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        container  INTEGER NOT NULL,
        lsn        INTEGER NOT NULL,
        name       TEXT,
        scheduled  INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX snapshots_container ON snapshots (container, lsn);

    CREATE TABLE operations (
        id             TEXT PRIMARY KEY,
        family         TEXT NOT NULL,
        tenant         TEXT NOT NULL,
        kind           TEXT NOT NULL,
        source         INTEGER NOT NULL,
        source_ref     TEXT NOT NULL,
        target         INTEGER NOT NULL,
        target_ref     TEXT NOT NULL,
        strategy       TEXT NOT NULL,
        target_time    INTEGER,
        snapshot_lsn   INTEGER NOT NULL,
        history        INTEGER NOT NULL,
        collections    TEXT,                    -- JSON array, NULL = all
        status         TEXT NOT NULL,           -- pending | in_progress | succeeded | failed | canceled
        exclusive_key  TEXT,
        cur_collection TEXT NOT NULL DEFAULT '',
        cur_key        TEXT NOT NULL DEFAULT '',
        cur_lsn        INTEGER NOT NULL DEFAULT 0,
        records_copied INTEGER NOT NULL DEFAULT 0,
        bytes_copied   INTEGER NOT NULL DEFAULT 0,
        records_total  INTEGER NOT NULL,
        bytes_total    INTEGER NOT NULL,
        chunk_size     INTEGER NOT NULL,
        steps          INTEGER NOT NULL DEFAULT 0,
        attempts       INTEGER NOT NULL DEFAULT 0,
        error          TEXT,
        lease_owner    TEXT,
        lease_expires  INTEGER NOT NULL DEFAULT 0,
        last_step_at   INTEGER NOT NULL DEFAULT 0,
        copy_us        INTEGER NOT NULL DEFAULT 0, -- time spent copying, for the ETA
        notify         TEXT,                    -- JSON array of webhook URLs / e-mail addresses
        meta           TEXT NOT NULL,           -- family extras (JSON)
        created_at     INTEGER NOT NULL,
        updated_at     INTEGER NOT NULL,
        started_at     INTEGER,
        completed_at   INTEGER
    );
    -- The one-active-operation rule, enforced by the database.
    CREATE UNIQUE INDEX operations_one_active ON operations (exclusive_key)
        WHERE exclusive_key IS NOT NULL AND status IN ('pending', 'in_progress');
    CREATE INDEX operations_runnable ON operations (last_step_at, created_at)
        WHERE status IN ('pending', 'in_progress');
    CREATE INDEX operations_tenant ON operations (tenant, family, created_at);
    CREATE INDEX operations_source ON operations (source, created_at);
    CREATE INDEX operations_target ON operations (target);

    CREATE TABLE events (
        op   TEXT NOT NULL,
        seq  INTEGER NOT NULL,
        at   INTEGER NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (op, seq)
    ) WITHOUT ROWID;

    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        op              TEXT NOT NULL,
        destination     TEXT NOT NULL,          -- URL or e-mail address
        payload         TEXT NOT NULL,
        status          TEXT NOT NULL,          -- pending | delivered | failed
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error      TEXT,
        created_at      INTEGER NOT NULL,
        delivered_at    INTEGER
    );
    CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'pending';
    CREATE INDEX outbox_op ON outbox (op);

    -- Open retention passes: the pin LSN and the (collection, key) cursor.
    CREATE TABLE prune_passes (
        container  INTEGER PRIMARY KEY,
        pin        INTEGER NOT NULL,
        collection TEXT NOT NULL,
        key        TEXT NOT NULL
    );

    -- Idempotency-Key → the operation it started, in the same transaction
    -- as the operation, so two concurrent retries start one operation.
    CREATE TABLE idempotency (
        scope       TEXT NOT NULL,
        key         TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        op          TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (scope, key)
    ) WITHOUT ROWID;
    "#,
    // 2: owned names (projects, organizations, environments): which tenant
    // owns a name a family scopes resources under.
    r#"
    CREATE TABLE owners (
        kind       TEXT NOT NULL,
        name       TEXT NOT NULL,
        tenant     TEXT NOT NULL,
        parent     TEXT,
        spec       TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (kind, name)
    ) WITHOUT ROWID;
    CREATE INDEX owners_tenant ON owners (tenant, kind, created_at);
    "#,
    // 3: webhook signing secrets (Standard Webhooks), one per tenant; the
    // previous one keeps signing beside it for a grace period after a
    // rotation. Stored as is: the worker needs the key to sign.
    r#"
    CREATE TABLE webhook_secrets (
        tenant     TEXT PRIMARY KEY,
        secret     TEXT NOT NULL,
        previous   TEXT,
        rotated_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 4: per-tenant limits: counters per clock minute for rates, and the
    // tenant's active operations counted through an index.
    r#"
    CREATE TABLE rate_windows (
        tenant TEXT NOT NULL,
        kind   TEXT NOT NULL,                  -- writes
        minute INTEGER NOT NULL,               -- µs since epoch / 60 000 000
        count  INTEGER NOT NULL,
        PRIMARY KEY (tenant, kind, minute)
    ) WITHOUT ROWID;
    CREATE INDEX operations_tenant_active ON operations (tenant)
        WHERE status IN ('pending', 'in_progress');
    CREATE INDEX operations_tenant_created ON operations (tenant, created_at);
    "#,
    // 5: containers that expire (a family's time-to-live): the worker marks
    // them deleting once expires_at (µs) has passed, and the purge frees
    // their rows.
    r#"
    ALTER TABLE containers ADD COLUMN expires_at INTEGER;
    CREATE INDEX containers_expiry ON containers (expires_at)
        WHERE expires_at IS NOT NULL AND deleting = 0;
    "#,
    // 6: copy-on-write branches. A branch reads its own versions, then each
    // ancestor's up to `bound` (see branches.rs): one row per ancestor,
    // depth 1 the parent. Rows go when the branch is hydrated (it then holds
    // every version it can see) or deleted. `cut_depth`: the depth of the
    // first level below the nearest skip-history boundary (those levels show
    // only the versions live at that level's bound). `records_lsn` finds a
    // container's versions after an LSN (a branch's statistics at its base).
    r#"
    CREATE TABLE branch_levels (
        container   INTEGER NOT NULL,
        depth       INTEGER NOT NULL,
        ancestor    INTEGER NOT NULL,
        bound       INTEGER NOT NULL,
        collections TEXT,
        cut_depth   INTEGER,
        PRIMARY KEY (container, depth)
    ) WITHOUT ROWID;
    CREATE INDEX branch_levels_ancestor ON branch_levels (ancestor, container);
    CREATE INDEX records_lsn ON records (container, lsn);
    ALTER TABLE operations ADD COLUMN mode TEXT NOT NULL DEFAULT 'copy';
    "#,
    // 7: staged imports (imports.rs): an import loads into a hidden
    // staging branch in short transactions and commits in one small one;
    // the container then reads the staging branch from the commit LSN on
    // (`from_lsn`), and rows hydrated from it keep that (`visible_from`).
    // One open import per container.
    r#"
    ALTER TABLE branch_levels ADD COLUMN from_lsn INTEGER NOT NULL DEFAULT 0;
    -- A version copied out of a committed import's staging branch shows only
    -- from the import's commit LSN (NULL: from its own LSN).
    ALTER TABLE records ADD COLUMN visible_from INTEGER;
    CREATE INDEX records_visible_from ON records (container, visible_from)
        WHERE visible_from IS NOT NULL;
    CREATE TABLE imports (
        id            TEXT PRIMARY KEY,
        tenant        TEXT NOT NULL,
        container     INTEGER NOT NULL,
        stage         INTEGER NOT NULL,           -- the staging branch
        state         TEXT NOT NULL,              -- open | committed | abandoned
        staged        INTEGER NOT NULL,           -- lines staged
        committed_lsn INTEGER,
        expires_at    INTEGER NOT NULL,           -- abandoned when idle past it
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX imports_open ON imports (container) WHERE state = 'open';
    CREATE INDEX imports_expiry ON imports (expires_at) WHERE state = 'open';
    "#,
    // 8: the record layout follows the page size: on small pages
    // RECORDS_ON_SMALL_PAGES runs with it (see `migrate`); nothing on large.
    "",
    // 9: protected resources refuse direct writes, imports and deletes.
    r#"
    ALTER TABLE containers ADD COLUMN protected INTEGER NOT NULL DEFAULT 0;
    "#,
    // 10: resets. A level may be a window of history: it shows only to
    // reads at or after since_lsn, and before until_lsn (null: no end). A
    // container remembers the resource it was cloned from (parent), which a
    // reset reads again; branches made before carry it in their first level.
    r#"
    ALTER TABLE branch_levels ADD COLUMN since_lsn INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE branch_levels ADD COLUMN until_lsn INTEGER;
    ALTER TABLE containers ADD COLUMN parent INTEGER;
    UPDATE containers SET parent = (SELECT b.ancestor FROM branch_levels b
        WHERE b.container = containers.id AND b.depth = 1 AND b.from_lsn = 0);
    "#,
    // 11: merges. A container cloned from another remembers the point up
    // to which its own changes are accounted for in that parent (merge_base):
    // the clone's base, then a reset's base, then each merge's LSN. Clones
    // made before read it from their first level.
    r#"
    ALTER TABLE containers ADD COLUMN merge_base INTEGER;
    UPDATE containers SET merge_base = (SELECT b.bound FROM branch_levels b
        WHERE b.container = containers.id AND b.depth = 1 AND b.from_lsn = 0
          AND b.until_lsn IS NULL AND b.ancestor = containers.parent);
    "#,
    // 12: masked branches. A level shows its rows through masks (a JSON
    // array of {rules, salt}); a masked container keeps its own mask
    // (rules and salt), which a reset applies to its parent again.
    r#"
    ALTER TABLE branch_levels ADD COLUMN mask TEXT;
    ALTER TABLE containers ADD COLUMN mask TEXT;
    "#,
    // 13: rows shown later than written (an import's, and their copies),
    // found by a diff or a merge without scanning every row: an index of
    // them, and the greatest visible_from of a container's rows (0: none);
    // and the point a clone shares with its parent (branch_base: the
    // clone's or reset's base, which merges do not move), which a diff
    // starts from once hydration dropped the levels that named it.
    r#"
    CREATE INDEX records_late ON records (container, visible_from) WHERE visible_from > lsn;
    ALTER TABLE containers ADD COLUMN branch_base INTEGER;
    UPDATE containers SET branch_base = merge_base;
    ALTER TABLE containers ADD COLUMN visible_max INTEGER NOT NULL DEFAULT 0;
    UPDATE containers SET visible_max =
        coalesce((SELECT max(r.visible_from) FROM records r WHERE r.container = containers.id), 0);
    "#,
    // 14: merges too large for one transaction (merging.rs): an import into
    // the parent that the worker fills from the branch (`merge_from`) a
    // chunk at a time, from its merge base (`merge_base`), with the
    // request's strategy and paths, every chunk's versions at one LSN
    // (`merge_lsn`), examined up to a key (`merge_after_*`); `outcome` says
    // why an import ended without a commit.
    r#"
    ALTER TABLE imports ADD COLUMN merge_from INTEGER;
    ALTER TABLE imports ADD COLUMN merge_base INTEGER;
    ALTER TABLE imports ADD COLUMN merge_lsn INTEGER;
    ALTER TABLE imports ADD COLUMN merge_resolve TEXT;
    ALTER TABLE imports ADD COLUMN merge_paths TEXT;
    ALTER TABLE imports ADD COLUMN merge_after_collection TEXT NOT NULL DEFAULT '';
    ALTER TABLE imports ADD COLUMN merge_after_key TEXT NOT NULL DEFAULT '';
    ALTER TABLE imports ADD COLUMN examined INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE imports ADD COLUMN outcome TEXT;
    CREATE INDEX imports_merging ON imports (merge_from, created_at) WHERE merge_from IS NOT NULL;
    "#,
    // 15: nothing on SQLite; on PostgreSQL, POSTGRES_PLANNER runs with it
    // (see `migrate`).
    "",
    // 16: nothing on SQLite; on PostgreSQL, POSTGRES_SMALL_SAMPLE runs with
    // it (see `migrate`).
    "",
];
