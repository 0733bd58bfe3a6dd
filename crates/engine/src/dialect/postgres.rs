//! What a PostgreSQL backend decides for itself: placeholders, the
//! transactions that serialise writers, error kinds by SQLSTATE, and the
//! values it reads. Pure.

use std::borrow::Cow;

use crate::db::{DbError, Row, TxMode, Value};

/// The advisory lock every write transaction takes first: writers
/// serialise as they do on SQLite (`BEGIN IMMEDIATE`), so a write
/// transaction never fails half-way on a conflict, and under `READ
/// COMMITTED` each of its statements sees every earlier writer's
/// commit. (Key: "spinoff" in ASCII.)
pub const WRITE_LOCK_KEY: i64 = 0x73_70_69_6e_6f_66_66;

/// The statements that open a transaction of `mode`, with the write
/// lock taken as `wait` allows: waiting for it, or trying once
/// (`pg_try_advisory_xact_lock`, whose `false` the backend reports as
/// [`DbError::Busy`]). A write transaction that then idles past 10 s
/// (its guest trapped or hung and the runtime pooled its connection with
/// the transaction open: seen under Spin 4) is ended by the server
/// (`idle_in_transaction_session_timeout`, set for that transaction only),
/// so the write lock is never held for good.
pub fn begin(mode: TxMode, wait: bool) -> [&'static str; 2] {
    match (mode, wait) {
        (TxMode::Write, true) => [
            "BEGIN ISOLATION LEVEL READ COMMITTED",
            "SELECT 1 FROM pg_advisory_xact_lock(32493220448396902), set_config('idle_in_transaction_session_timeout', '10000', true)",
        ],
        (TxMode::Write, false) => [
            "BEGIN ISOLATION LEVEL READ COMMITTED",
            "SELECT CAST(pg_try_advisory_xact_lock(32493220448396902) AS INTEGER) FROM set_config('idle_in_transaction_session_timeout', '10000', true)",
        ],
        // A snapshot for all the reads of the transaction, as SQLite's
        // deferred `BEGIN` gives.
        (TxMode::Read, _) => ["BEGIN ISOLATION LEVEL REPEATABLE READ", "SELECT 1"],
    }
}

/// Around a walk of one container in key order a page at a time
/// (`ORDER BY collection, key … LIMIT n` after a cursor), inside a
/// transaction: the planner walks an index rather than sorting
/// (`enable_sort`, for the rest of the transaction, until [`SORT_ON`]).
/// It cannot tell how many rows a container has (see the schema's
/// `POSTGRES_PLANNER`); where it guessed few, it sorted the rest of the
/// container for every page (a copy of 100 000 records ran at 0.01 of one
/// `INSERT … SELECT`). Not for every statement: a diff's joins, planned
/// without sorts, ran 50 times slower. JIT goes off too, for the rest of
/// the transaction: the planner counts a sort it cannot avoid (a
/// multi-arm walk's final order) as 10¹⁰, which passes `jit_above_cost`,
/// and compiling a 1 ms query took 300 ms.
pub const SORT_OFF: &str = "SELECT set_config('enable_sort', 'off', true), set_config('jit', 'off', true)";

/// After a walk: sorts again (see [`SORT_OFF`]).
pub const SORT_ON: &str = "SELECT set_config('enable_sort', 'on', true)";

/// Whether the planner's statistics of `records` are stale: 1 once a
/// fifth of its rows (at least 1 000) changed since the last `ANALYZE`
/// (never analysed: `reltuples` is -1), else 0.
pub const STALE_STATISTICS: &str = "SELECT CAST(count(*) AS INTEGER) FROM pg_stat_user_tables s \
     JOIN pg_class c ON c.oid = s.relid \
     WHERE s.relid = to_regclass('records') AND s.n_mod_since_analyze > GREATEST(1000, c.reltuples * 0.2)";

/// The answer of the second statement of [`begin`]: the write lock
/// taken (`true`), or not (`pg_try_advisory_xact_lock` gave `false`:
/// [`DbError::Busy`], as SQLite's lock wait that ran out).
pub fn check_locked(rows: Vec<Row>) -> Result<(), DbError> {
    match rows.first().map(|r| r.0.as_slice()) {
        Some([Value::Integer(1)]) => Ok(()),
        Some([Value::Integer(0)]) => Err(DbError::Busy(
            "another transaction holds the write lock".into(),
        )),
        other => Err(DbError::Other(format!("the write lock answered {other:?}"))),
    }
}

/// A `NUMERIC` (what `sum()` over `BIGINT` gives) as the engine reads
/// it: an integer where it is one (as SQLite's `sum()` gives), else a
/// real.
pub fn numeric_value(text: &str) -> Result<Value, DbError> {
    let t = text.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Ok(Value::Integer(i));
    }
    if let Some((int, frac)) = t.split_once('.') {
        if frac.bytes().all(|b| b == b'0') {
            if let Ok(i) = int.parse::<i64>() {
                return Ok(Value::Integer(i));
            }
        }
    }
    t.parse::<f64>()
        .map(Value::Real)
        .map_err(|_| DbError::Other(format!("numeric {t:?} is not a number the engine reads")))
}

/// A `NUMERIC` in PostgreSQL's binary format, as decimal text.
pub fn numeric_text(raw: &[u8]) -> Result<String, DbError> {
    let bad = || DbError::Other("malformed binary numeric".into());
    let word = |i: usize| -> Result<i16, DbError> {
        raw.get(i..i + 2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(bad)
    };
    let ndigits = word(0)? as usize;
    let weight = word(2)? as i64;
    let sign = word(4)? as u16;
    let dscale = word(6)? as usize;
    if sign == 0xC000 {
        return Ok("NaN".into());
    }
    let digits = (0..ndigits)
        .map(|i| word(8 + 2 * i).map(|d| d as i64))
        .collect::<Result<Vec<_>, _>>()?;
    let mut int = String::new();
    for w in 0..=weight.max(-1) {
        let d = digits.get(w as usize).copied().unwrap_or(0);
        if int.is_empty() {
            if d != 0 {
                int = d.to_string();
            }
        } else {
            int.push_str(&format!("{d:04}"));
        }
    }
    if int.is_empty() {
        int.push('0');
    }
    let mut frac = String::new();
    let mut w = weight + 1;
    while frac.len() < dscale {
        let d = if w < 0 { 0 } else { digits.get(w as usize).copied().unwrap_or(0) };
        frac.push_str(&format!("{d:04}"));
        w += 1;
    }
    frac.truncate(dscale);
    let sign = if sign == 0x4000 { "-" } else { "" };
    Ok(if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

/// The engine's placeholders (`?1`, `?2`, …; a bare `?` is one more
/// than the largest before it, as in SQLite) as PostgreSQL's `$1`,
/// `$2`, …, outside string literals and quoted names, numbered in the
/// order they first appear. Also which of the engine's parameters each
/// `$n` is (1-based): a parameter the statement never names is not
/// sent (PostgreSQL could not tell its type).
pub fn placeholders(sql: &str) -> (Cow<'_, str>, Vec<usize>) {
    if !sql.contains('?') {
        return (Cow::Borrowed(sql), Vec::new());
    }
    let mut out = String::with_capacity(sql.len());
    let mut order: Vec<usize> = Vec::new();
    let mut largest = 0;
    let mut quoted: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(q) = quoted {
            out.push(c);
            if c == q {
                quoted = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => {
                quoted = Some(c);
                out.push(c);
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.next_if(|d| d.is_ascii_digit()) {
                    digits.push(d);
                }
                let n = digits.parse().unwrap_or(largest + 1);
                largest = largest.max(n);
                let pos = match order.iter().position(|&o| o == n) {
                    Some(p) => p + 1,
                    None => {
                        order.push(n);
                        order.len()
                    }
                };
                out.push('$');
                out.push_str(&pos.to_string());
            }
            c => out.push(c),
        }
    }
    (Cow::Owned(out), order)
}

/// The parameters a statement sends, in the order
/// [`placeholders`] numbered them; an error when it names one the
/// caller did not give.
pub fn pick<'a>(params: &'a [Value], order: &[usize]) -> Result<Vec<&'a Value>, DbError> {
    order
        .iter()
        .map(|&n| {
            params.get(n.wrapping_sub(1)).ok_or_else(|| {
                DbError::Other(format!("the statement names ?{n}, {} parameters given", params.len()))
            })
        })
        .collect()
}

/// A server error by its SQLSTATE, as the engine's [`DbError`] kinds:
///
/// | SQLSTATE                         | kind          |
/// |----------------------------------|---------------|
/// | `40001` serialization failure, `40P01` deadlock, `55P03` lock not available, `57014` canceled (statement timeout) | `Busy` |
/// | class `08` (connection), `57P01`–`57P03` (server shutting down, cannot connect now), `53300` too many connections | `Unavailable` |
/// | class `23` (integrity constraint) | `Constraint`  |
/// | `0A000` feature not supported     | `Unsupported` |
/// | anything else                     | `Other`       |
pub fn classify(sqlstate: &str, message: String) -> DbError {
    match sqlstate {
        "40001" | "40P01" | "55P03" | "57014" => DbError::Busy(message),
        "57P01" | "57P02" | "57P03" | "53300" => DbError::Unavailable(message),
        "0A000" => DbError::Unsupported(message),
        s if s.starts_with("08") => DbError::Unavailable(message),
        s if s.starts_with("23") => DbError::Constraint(message),
        _ => DbError::Other(message),
    }
}

/// Whether a statement answers rows (`SELECT`, `WITH … SELECT`,
/// `… RETURNING`): run it as a query; anything else as a command,
/// whose count is [`crate::Db::changes`].
pub fn answers_rows(sql: &str) -> bool {
    let head = sql.trim_start();
    head.get(..6).is_some_and(|h| h.eq_ignore_ascii_case("SELECT"))
        || head.get(..4).is_some_and(|h| h.eq_ignore_ascii_case("WITH"))
        || sql.contains("RETURNING")
        || head.get(..6).is_some_and(|h| h.eq_ignore_ascii_case("VALUES"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_outside_literals() {
        assert_eq!(placeholders("SELECT 1"), ("SELECT 1".into(), vec![]));
        assert_eq!(
            placeholders("SELECT a FROM t WHERE b = ?12 AND c = '?1' AND \"d?\" = ?2 OR b = ?12"),
            ("SELECT a FROM t WHERE b = $1 AND c = '?1' AND \"d?\" = $2 OR b = $1".into(), vec![12, 2])
        );
        assert_eq!(placeholders("VALUES (?, ?)"), ("VALUES ($1, $2)".into(), vec![1, 2]));
        assert_eq!(placeholders("SELECT 'it''s ?1', ?1"), ("SELECT 'it''s ?1', $1".into(), vec![1]));
        let params = [Value::Integer(1), Value::Integer(2), Value::Integer(3)];
        assert_eq!(pick(&params, &[3, 1]).unwrap(), vec![&params[2], &params[0]]);
        assert!(pick(&params, &[4]).is_err());
    }

    #[test]
    fn numerics_read_as_integers_where_they_are() {
        // 12345678: weight 1, digits [1234, 5678].
        let raw = [0, 2, 0, 1, 0, 0, 0, 0, 0x04, 0xD2, 0x16, 0x2E];
        assert_eq!(numeric_text(&raw).unwrap(), "12345678");
        // -1.5: weight 0, digits [1, 5000], dscale 1, negative.
        let raw = [0, 2, 0, 0, 0x40, 0, 0, 1, 0, 1, 0x13, 0x88];
        assert_eq!(numeric_text(&raw).unwrap(), "-1.5");
        // 0: no digits.
        assert_eq!(numeric_text(&[0, 0, 0, 0, 0, 0, 0, 0]).unwrap(), "0");
        assert_eq!(numeric_value("42").unwrap(), Value::Integer(42));
        assert_eq!(numeric_value("42.000").unwrap(), Value::Integer(42));
        assert_eq!(numeric_value("-1.5").unwrap(), Value::Real(-1.5));
        assert!(numeric_value("x").is_err());
    }

    #[test]
    fn write_transactions_take_the_one_write_lock() {
        for wait in [true, false] {
            assert!(begin(TxMode::Write, wait)[1].contains(&WRITE_LOCK_KEY.to_string()));
        }
    }

    #[test]
    fn server_errors_are_classified_by_sqlstate() {
        assert!(matches!(classify("40001", "x".into()), DbError::Busy(_)));
        assert!(matches!(classify("08006", "x".into()), DbError::Unavailable(_)));
        assert!(matches!(classify("23505", "x".into()), DbError::Constraint(_)));
        assert!(matches!(classify("42601", "x".into()), DbError::Other(_)));
        assert!(answers_rows(" select 1"));
        assert!(answers_rows("INSERT INTO t VALUES (1) RETURNING id"));
        assert!(!answers_rows("UPDATE t SET a = 1"));
    }
}
