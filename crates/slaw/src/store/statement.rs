//! The SQL a reader may run. `slaw query` takes SQL from the user; before the store runs it,
//! this module splits the text with the lexical rules of SQLite and PostgreSQL (quoted strings
//! and identifiers, `E'…'` escapes, dollar quotes, line and nested block comments) and accepts
//! it only when it is **one** statement that reads: it starts with `SELECT`, `WITH`, `VALUES`,
//! `EXPLAIN` of one of those, or (PostgreSQL) `TABLE` and `SHOW`, and names none of the
//! keywords that change data, the schema, the transaction or the connection outside quotes.
//!
//! This is the first of three locks (the store also opens the database read-only and, on
//! PostgreSQL, lets the server's own parser confirm that the text is one statement and runs it
//! in a read-only transaction), so that a mistake in any one of them does not make a reader
//! write.

/// Which database's lexical rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite: `[…]` and `` `…` `` identifiers, block comments do not nest.
    Sqlite,
    /// PostgreSQL: `E'…'` strings with backslash escapes, `$tag$…$tag$` strings, nested
    /// block comments.
    Postgres,
}

/// Why a reader's SQL was refused before it reached the database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Nothing but whitespace and comments.
    #[error("the query is empty")]
    Empty,
    /// More than one statement.
    #[error(
        "slaw query runs one statement; this text holds {0} (separated by `;`): run them one \
         at a time"
    )]
    Several(usize),
    /// A statement that is not a query.
    #[error(
        "slaw query only reads: it runs SELECT, WITH, VALUES or EXPLAIN, not {0}; use sqlite3 \
         or psql to change a database"
    )]
    NotARead(String),
    /// A first word that starts no statement slaw knows (a misspelling, say).
    #[error(
        "`{0}` does not start a query: slaw query runs SELECT, WITH, VALUES or EXPLAIN \
         statements"
    )]
    Unknown(String),
    /// A keyword that writes or changes the session, inside an otherwise reading statement.
    #[error(
        "slaw query only reads: `{0}` is not allowed in a query; use sqlite3 or psql to change \
         a database"
    )]
    Writes(String),
    /// A quote or comment that never ends.
    #[error("the query has an unterminated {0}")]
    Unterminated(&'static str),
}

/// Statements a reader may start with.
const READS: &[&str] = &["SELECT", "WITH", "VALUES"];
/// Further PostgreSQL statements that only read.
const PG_READS: &[&str] = &["TABLE", "SHOW"];
/// First words of the statements of SQLite and PostgreSQL that do not only read.
const STATEMENTS: &[&str] = &[
    "INSERT",
    "UPDATE",
    "DELETE",
    "REPLACE",
    "UPSERT",
    "MERGE",
    "CREATE",
    "DROP",
    "ALTER",
    "TRUNCATE",
    "VACUUM",
    "ATTACH",
    "DETACH",
    "PRAGMA",
    "REINDEX",
    "ANALYZE",
    "ANALYSE",
    "BEGIN",
    "START",
    "COMMIT",
    "END",
    "ROLLBACK",
    "ABORT",
    "SAVEPOINT",
    "RELEASE",
    "SET",
    "RESET",
    "COPY",
    "GRANT",
    "REVOKE",
    "DO",
    "CALL",
    "LOCK",
    "PREPARE",
    "EXECUTE",
    "DEALLOCATE",
    "DISCARD",
    "LISTEN",
    "NOTIFY",
    "UNLISTEN",
    "LOAD",
    "CLUSTER",
    "REFRESH",
    "SECURITY",
    "IMPORT",
    "CHECKPOINT",
    "COMMENT",
    "FETCH",
    "MOVE",
    "CLOSE",
    "DECLARE",
];
/// Keywords that never appear (outside quotes) in a statement that only reads: data-modifying
/// `WITH` parts, `SELECT … INTO`, `… FOR UPDATE`. (Transaction and session statements are
/// refused as the statement's first word; inside one statement they cannot run.)
const WRITES: &[&str] = &[
    "INSERT", "UPDATE", "DELETE", "MERGE", "INTO", "DROP", "ALTER", "CREATE", "TRUNCATE", "ATTACH",
    "DETACH", "VACUUM", "PRAGMA", "REINDEX", "COPY", "GRANT", "REVOKE",
];

/// A word outside quotes and comments, upper-cased, with the parenthesis depth it sits at.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Word {
    text: String,
    depth: usize,
}

/// One statement's words (quoted parts and comments dropped).
#[derive(Debug, Default)]
struct Statement {
    words: Vec<Word>,
    /// Whether anything but whitespace and comments is in it (a lone quoted string counts).
    content: bool,
}

/// Checks that `sql` is one statement that only reads.
pub fn check(sql: &str, dialect: Dialect) -> Result<(), Refused> {
    let statements = split(sql, dialect)?;
    let mut with_content = statements.into_iter().filter(|s| s.content);
    let Some(first) = with_content.next() else {
        return Err(Refused::Empty);
    };
    let rest = with_content.count();
    if rest > 0 {
        return Err(Refused::Several(rest + 1));
    }
    check_statement(&first, dialect)
}

fn check_statement(statement: &Statement, dialect: Dialect) -> Result<(), Refused> {
    let words = &statement.words;
    let Some(lead) = words.first() else {
        return Err(Refused::NotARead("a statement without a keyword".into()));
    };
    let allowed =
        |w: &str| READS.contains(&w) || (dialect == Dialect::Postgres && PG_READS.contains(&w));
    if lead.text == "EXPLAIN" {
        // EXPLAIN [QUERY PLAN | ANALYZE | VERBOSE | (options)] <query>
        let inner = words[1..]
            .iter()
            .find(|w| {
                w.depth == lead.depth
                    && !matches!(
                        w.text.as_str(),
                        "QUERY" | "PLAN" | "ANALYZE" | "ANALYSE" | "VERBOSE"
                    )
            })
            .map(|w| w.text.as_str())
            .unwrap_or("");
        if !allowed(inner) {
            return Err(Refused::NotARead(format!("EXPLAIN {inner}").trim().into()));
        }
    } else if !allowed(&lead.text) {
        if !STATEMENTS.contains(&lead.text.as_str()) {
            return Err(Refused::Unknown(lead.text.clone()));
        }
        return Err(Refused::NotARead(lead.text.clone()));
    }
    if let Some(w) = words.iter().find(|w| WRITES.contains(&w.text.as_str())) {
        // `SELECT … FOR UPDATE` locks rows (a write in a read-only transaction).
        return Err(Refused::Writes(w.text.clone()));
    }
    Ok(())
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Splits `sql` into statements at `;` outside quotes and comments.
fn split(sql: &str, dialect: Dialect) -> Result<Vec<Statement>, Refused> {
    let b = sql.as_bytes();
    let pg = dialect == Dialect::Postgres;
    let mut out = vec![Statement::default()];
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let current = out.last_mut().expect("one statement at least");
        match c {
            b';' => {
                out.push(Statement::default());
                depth = 0;
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = b[i..]
                    .iter()
                    .position(|&x| x == b'\n')
                    .map_or(b.len(), |p| i + p + 1);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => i = block_comment(b, i, pg)?,
            b'\'' => {
                // E'…' (PostgreSQL) takes backslash escapes.
                let escapes = pg
                    && i > 0
                    && matches!(b[i - 1], b'E' | b'e')
                    && (i < 2 || !is_word_byte(b[i - 2]));
                i = quoted(b, i, b'\'', escapes).ok_or(Refused::Unterminated("string"))?;
                current.content = true;
            }
            b'"' => {
                i = quoted(b, i, b'"', false).ok_or(Refused::Unterminated("quoted identifier"))?;
                current.content = true;
            }
            b'`' if !pg => {
                i = quoted(b, i, b'`', false).ok_or(Refused::Unterminated("quoted identifier"))?;
                current.content = true;
            }
            b'[' if !pg => {
                i = b[i..]
                    .iter()
                    .position(|&x| x == b']')
                    .map(|p| i + p + 1)
                    .ok_or(Refused::Unterminated("[identifier]"))?;
                current.content = true;
            }
            b'$' if pg && (i == 0 || !is_word_byte(b[i - 1])) => {
                match dollar_quote(b, i) {
                    Some(Ok(end)) => i = end,
                    Some(Err(())) => return Err(Refused::Unterminated("dollar-quoted string")),
                    None => i += 1,
                }
                current.content = true;
            }
            b'(' => {
                depth += 1;
                current.content = true;
                i += 1;
            }
            b')' => {
                depth = depth.saturating_sub(1);
                current.content = true;
                i += 1;
            }
            _ if is_word_byte(c) => {
                let start = i;
                while i < b.len() && (is_word_byte(b[i]) || (pg && b[i] == b'$')) {
                    i += 1;
                }
                let text = String::from_utf8_lossy(&b[start..i]).to_ascii_uppercase();
                current.words.push(Word { text, depth });
                current.content = true;
            }
            _ if c.is_ascii_whitespace() => i += 1,
            _ => {
                current.content = true;
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The index after a `/* … */` comment starting at `i` (nested on PostgreSQL).
fn block_comment(b: &[u8], mut i: usize, nested: bool) -> Result<usize, Refused> {
    let mut level = 0usize;
    while i + 1 < b.len() {
        if b[i] == b'/' && b[i + 1] == b'*' && (nested || level == 0) {
            level += 1;
            i += 2;
        } else if b[i] == b'*' && b[i + 1] == b'/' {
            level -= 1;
            i += 2;
            if level == 0 {
                return Ok(i);
            }
        } else {
            i += 1;
        }
    }
    Err(Refused::Unterminated("comment"))
}

/// The index after a quoted part opened by `quote` at `i` (a doubled quote is a quote).
fn quoted(b: &[u8], i: usize, quote: u8, backslash: bool) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() {
        if backslash && b[j] == b'\\' {
            j += 2;
            continue;
        }
        if b[j] == quote {
            if b.get(j + 1) == Some(&quote) {
                j += 2;
                continue;
            }
            return Some(j + 1);
        }
        j += 1;
    }
    None
}

/// A PostgreSQL `$tag$…$tag$` string at `i`: `None` when the `$` opens none (a parameter
/// `$1`), else the index after it or an error when it never ends.
fn dollar_quote(b: &[u8], i: usize) -> Option<Result<usize, ()>> {
    let mut j = i + 1;
    if b.get(j).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    while j < b.len() && is_word_byte(b[j]) {
        j += 1;
    }
    if b.get(j) != Some(&b'$') {
        return None;
    }
    let tag = &b[i..=j];
    let body = j + 1;
    Some(
        b[body..]
            .windows(tag.len())
            .position(|w| w == tag)
            .map(|p| body + p + tag.len())
            .ok_or(()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(sql: &str) -> Result<(), Refused> {
        check(sql, Dialect::Sqlite)
    }

    fn pg(sql: &str) -> Result<(), Refused> {
        check(sql, Dialect::Postgres)
    }

    #[test]
    fn queries_pass() {
        for sql in [
            "SELECT 1",
            "select * from trials;",
            "  -- a comment\n SELECT 1; -- trailing\n",
            "WITH r AS (SELECT 1) SELECT * FROM r",
            "VALUES (1), (2)",
            "(SELECT 1) UNION (SELECT 2)",
            "SELECT 'a;b', \"c;d\" FROM t /* ; */",
            "SELECT 'it''s; DELETE FROM trials'",
            "EXPLAIN QUERY PLAN SELECT * FROM trials",
            "SELECT replace(name, 'a', 'b') FROM sweeps",
            "SELECT json_extract(result_json, '$.law.alpha') FROM fits",
            "SELECT CASE WHEN state = 'completed' THEN 1 ELSE 0 END AS done, started_at FROM trials",
        ] {
            assert_eq!(sqlite(sql), Ok(()), "{sql}");
        }
        for sql in [
            "SELECT $$a; DELETE FROM x$$",
            "SELECT $t$ ; COMMIT; $t$ AS x",
            "SELECT E'it\\'s; COMMIT' AS x",
            "SELECT 1 /* outer /* inner ; */ still comment ; */",
            "TABLE trials",
            "SHOW server_version",
            "EXPLAIN (ANALYZE, BUFFERS) SELECT 1",
            "SELECT a$b FROM t",
        ] {
            assert_eq!(pg(sql), Ok(()), "{sql}");
        }
    }

    #[test]
    fn several_statements_are_refused() {
        assert_eq!(sqlite("SELECT 1; SELECT 2"), Err(Refused::Several(2)));
        assert_eq!(
            pg("BEGIN READ WRITE; DELETE FROM metrics; DELETE FROM trials; COMMIT"),
            Err(Refused::Several(4))
        );
        // A quote that a naive splitter would miss: the second statement is real.
        assert_eq!(
            pg("SELECT 'x''; '; DELETE FROM trials"),
            Err(Refused::Several(2))
        );
        // A backslash does not escape in a standard string.
        assert_eq!(pg("SELECT 'a\\'; DELETE FROM t"), Err(Refused::Several(2)));
        // SQLite's block comments do not nest: the `;` after the first `*/` is real.
        assert_eq!(
            sqlite("SELECT 1 /* a /* b */ ; DELETE FROM t"),
            Err(Refused::Several(2))
        );
    }

    #[test]
    fn writes_and_session_changes_are_refused() {
        for sql in [
            "VACUUM INTO '/tmp/copy.db'",
            "ATTACH DATABASE '/tmp/x.db' AS x",
            "PRAGMA journal_mode = DELETE",
            "DELETE FROM trials",
            "INSERT INTO sweeps DEFAULT VALUES",
            "CREATE TABLE x (a)",
            "BEGIN",
            "/* hidden */ DROP TABLE trials",
        ] {
            assert!(
                matches!(sqlite(sql), Err(Refused::NotARead(_))),
                "{sql}: {:?}",
                sqlite(sql)
            );
        }
        for sql in [
            "BEGIN READ WRITE",
            "START TRANSACTION READ WRITE",
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
            "COPY trials TO '/tmp/x'",
            "DO $$ BEGIN DELETE FROM trials; END $$",
            "CALL p()",
            "EXPLAIN ANALYZE DELETE FROM trials",
        ] {
            assert!(matches!(pg(sql), Err(Refused::NotARead(_))), "{sql}");
        }
        assert_eq!(
            pg("WITH d AS (DELETE FROM trials RETURNING *) SELECT * FROM d"),
            Err(Refused::Writes("DELETE".into()))
        );
        assert_eq!(
            sqlite("WITH r AS (SELECT 1) DELETE FROM trials"),
            Err(Refused::Writes("DELETE".into()))
        );
        assert_eq!(
            pg("SELECT * INTO copy FROM trials"),
            Err(Refused::Writes("INTO".into()))
        );
        assert_eq!(
            pg("SELECT * FROM trials FOR UPDATE"),
            Err(Refused::Writes("UPDATE".into()))
        );
    }

    #[test]
    fn a_misspelt_query_is_named_as_such() {
        assert_eq!(sqlite("SELEC 1"), Err(Refused::Unknown("SELEC".into())));
    }

    #[test]
    fn empty_and_unterminated_text_is_refused() {
        assert_eq!(sqlite("  ;; -- nothing\n"), Err(Refused::Empty));
        assert_eq!(sqlite("SELECT 'open"), Err(Refused::Unterminated("string")));
        assert_eq!(
            pg("SELECT $a$ never closed"),
            Err(Refused::Unterminated("dollar-quoted string"))
        );
        assert_eq!(
            sqlite("SELECT 1 /* open"),
            Err(Refused::Unterminated("comment"))
        );
    }
}
