//! Statements through the connection's prepared-statement cache. The daemon runs the same few
//! dozen statements for every batch of events and every verdict; parsing and planning them anew
//! each time cost about a tenth of its CPU time under an upgrade's alert burst.
use rusqlite::{Connection, Params, Row, config::DbConfig};

/// Sets a connection up for cached statements: a large enough cache, and the query planner
/// stability guarantee. Without the latter, SQLite (the bundled build has STAT4) marks statements
/// whose plan might depend on a bound value and re-prepares them on the first step after that
/// value changes, i.e. on every history query, since each names another path.
pub(super) fn configure(connection: &Connection) -> rusqlite::Result<()> {
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    connection.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

/// How many prepared statements each connection keeps (the store uses fewer than this).
const STATEMENT_CACHE_CAPACITY: usize = 128;

/// `execute` and `query_row` through the statement cache.
pub(super) trait CachedStatements {
    /// Runs a statement that returns no rows; returns the number of rows changed.
    fn execute_cached<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;

    /// Runs a query and maps its first row.
    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, map: F) -> rusqlite::Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>;
}

impl CachedStatements for Connection {
    fn execute_cached<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, map: F) -> rusqlite::Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, map)
    }
}
