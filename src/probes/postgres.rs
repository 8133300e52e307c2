//! PostgreSQL probe on tokio-postgres: connect (timed as `connect`: TCP,
//! startup, TLS, auth) and run one simple query (timed as `query`). Simple
//! queries return text for every column, so NUMERIC and friends export as
//! numbers without a decimal crate.
//!
//! The server gets `statement_timeout` equal to the probe timeout (added to
//! the DSN's own `options`), so a query the probe gave up on does not run on.
//! A fresh connection's task is aborted however the run ends (a timeout
//! too). A pooled connection whose run was cut off has its query cancelled
//! (over TLS if the probe uses TLS) and is replaced on the next run.

use std::time::Duration;

use regex::Regex;
use tokio::sync::Mutex;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls, SimpleQueryMessage};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::http::AbortOnDrop;
use super::{QueryValue, Recorder};
use crate::config::{BuildCx, PostgresConfig, PostgresMode, PostgresTlsMode, TlsConfig};
use crate::net::dial::{io_reason, io_source};
use crate::net::{tls, Failure, Phase, Reason};

const MAX_ROWS: usize = 100;
const MAX_LABEL: usize = 64;

#[derive(Debug)]
struct Values {
    columns: Vec<String>,
    label: Option<String>,
    max_rows: usize,
}

#[derive(Debug)]
struct Expect {
    rows: Option<u64>,
    value: Option<String>,
    value_regex: Option<Regex>,
    max_latency: Option<Duration>,
}

/// A pooled connection and whether a query on it was cut off.
#[derive(Default)]
struct Pooled {
    client: Option<Client>,
    /// The connection's task, aborted when the connection is replaced.
    conn: Option<AbortOnDrop>,
    busy: bool,
}

pub(crate) struct PostgresProbe {
    config: Config,
    tls: Option<MakeRustlsConnect>,
    query: String,
    mode: PostgresMode,
    expect: Expect,
    values: Option<Values>,
    pool: Mutex<Pooled>,
    target: String,
}

super::debug_target_only!(PostgresProbe);

impl PostgresProbe {
    pub(crate) fn build(
        cfg: &PostgresConfig,
        timeout: Duration,
        cx: &mut BuildCx,
    ) -> Option<PostgresProbe> {
        cx.checked(|cx| {
            let mut config = match cfg.dsn.parse::<Config>() {
                Ok(c) => c,
                Err(_) => {
                    // tokio-postgres' messages can quote the DSN; say what is wrong without it.
                    cx.problem_at(
                        "dsn",
                        "not a valid libpq connection string or postgres:// URL",
                    );
                    return None;
                }
            };
            if let Some(pw) = config.get_password() {
                cx.redactor.add(&String::from_utf8_lossy(pw));
            }
            if config.get_hosts().is_empty() {
                cx.problem_at("dsn", "names no host");
            }
            config.connect_timeout(timeout);
            // Appended to the DSN's own `options` (`-c search_path=...`), not
            // in their place; given last, it wins over one of theirs.
            let statement_timeout = format!("-c statement_timeout={}", timeout.as_millis());
            let options = match config.get_options() {
                Some(theirs) if !theirs.trim().is_empty() => {
                    format!("{} {statement_timeout}", theirs.trim())
                }
                _ => statement_timeout,
            };
            config.options(options);
            if config.get_application_name().is_none() {
                config.application_name("sidewatch");
            }
            let tls = match cfg.tls.mode {
                PostgresTlsMode::Disable => None,
                mode => {
                    config.ssl_mode(tokio_postgres::config::SslMode::Require);
                    let tls_cfg = TlsConfig {
                        insecure_skip_verify: mode == PostgresTlsMode::Require,
                        ca_file: cfg.tls.ca_file.clone(),
                        server_name: None,
                    };
                    match tls::client_config(&tls_cfg, &[]) {
                        Ok(c) => Some(MakeRustlsConnect::new((*c).clone())),
                        Err(e) => {
                            cx.key("tls").problem_at("ca_file", e);
                            None
                        }
                    }
                }
            };
            let expect = Expect {
                rows: cfg.expect.rows,
                value: cfg.expect.value.clone(),
                value_regex: super::assert::regex(
                    &cfg.expect.value_regex,
                    &mut cx.key("expect").key("value_regex"),
                ),
                max_latency: cfg.expect.max_latency.map(|d| d.0),
            };
            let values = cfg.values.as_ref().map(|v| {
                if v.columns.is_empty() {
                    cx.key("values")
                        .problem_at("columns", "name at least one column");
                }
                if v.max_rows == 0 || v.max_rows > MAX_ROWS {
                    cx.key("values")
                        .problem_at("max_rows", format!("must be 1 to {MAX_ROWS}"));
                }
                Values {
                    columns: v.columns.clone(),
                    label: v.label.clone(),
                    max_rows: v.max_rows,
                }
            });
            let target = describe(&config);
            Some(PostgresProbe {
                config,
                tls,
                query: cfg.query.clone(),
                mode: cfg.mode,
                expect,
                values,
                pool: Mutex::new(Pooled::default()),
                target,
            })
        })
    }

    /// `postgres://user@host:port/db`, never the password.
    pub(crate) fn target(&self) -> String {
        self.target.clone()
    }

    pub async fn run(&self, rec: &mut Recorder) -> Result<(), Failure> {
        let rows = match self.mode {
            PostgresMode::Fresh => {
                let (client, conn) = self.connect(rec).await?;
                // Aborted however the run ends, a timeout included: a task
                // left waiting on a cut-off query would hold its socket.
                let _conn = AbortOnDrop(conn);
                self.query(&client, rec).await?
            }
            PostgresMode::Pooled => self.run_pooled(rec).await?,
        };
        self.check(&rows, rec)
    }

    async fn run_pooled(&self, rec: &mut Recorder) -> Result<Vec<Vec<Option<String>>>, Failure> {
        let mut pool = self.pool.lock().await;
        if pool.busy || pool.client.as_ref().is_some_and(Client::is_closed) {
            // The last run was cut off mid-query: stop that query and start over.
            if let Some(c) = pool.client.take() {
                self.cancel(&c, pool.conn.take());
            }
        }
        if pool.client.is_none() {
            let (client, conn) = self.connect(rec).await?;
            pool.client = Some(client);
            pool.conn = Some(AbortOnDrop(conn));
        }
        pool.busy = true;
        let client = pool.client.as_ref().expect("connected above");
        let result = self.query(client, rec).await;
        pool.busy = false;
        if result.is_err() {
            pool.client = None;
            pool.conn = None;
        }
        result
    }

    /// Asks the server to cancel the query running on `client` (over TLS
    /// when the probe uses it: a server that requires TLS refuses a plain
    /// cancel request), within the probe timeout, then closes the connection.
    fn cancel(&self, client: &Client, conn: Option<AbortOnDrop>) {
        let token = client.cancel_token();
        let tls = self.tls.clone();
        let limit = self
            .config
            .get_connect_timeout()
            .copied()
            .unwrap_or(Duration::from_secs(10));
        tokio::spawn(async move {
            let cancel = async {
                match tls {
                    Some(tls) => token.cancel_query(tls).await,
                    None => token.cancel_query(NoTls).await,
                }
            };
            if let Ok(Err(e)) = tokio::time::timeout(limit, cancel).await {
                tracing::debug!(error = %e, "cancel request failed");
            }
            drop(conn);
        });
    }

    async fn connect(
        &self,
        rec: &mut Recorder,
    ) -> Result<(Client, tokio::task::JoinHandle<()>), Failure> {
        let fail = |e: tokio_postgres::Error| failure(e, true);
        let (client, task) = match &self.tls {
            None => {
                let (client, conn) = rec
                    .time(Phase::Connect, self.config.connect(NoTls))
                    .await
                    .map_err(fail)?;
                (
                    client,
                    tokio::spawn(async move {
                        let _ = conn.await;
                    }),
                )
            }
            Some(tls) => {
                let (client, conn) = rec
                    .time(Phase::Connect, self.config.connect(tls.clone()))
                    .await
                    .map_err(fail)?;
                (
                    client,
                    tokio::spawn(async move {
                        let _ = conn.await;
                    }),
                )
            }
        };
        Ok((client, task))
    }

    async fn query(
        &self,
        client: &Client,
        rec: &mut Recorder,
    ) -> Result<Vec<Vec<Option<String>>>, Failure> {
        let messages = rec
            .time(Phase::Query, client.simple_query(&self.query))
            .await
            .map_err(|e| failure(e, false))?;
        let mut columns: Vec<String> = Vec::new();
        let mut rows = Vec::new();
        for m in messages {
            if let SimpleQueryMessage::Row(r) = m {
                if columns.is_empty() {
                    columns = r.columns().iter().map(|c| c.name().to_string()).collect();
                }
                rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
            }
        }
        if let Some(v) = &self.values {
            rec.values = extract_values(v, &columns, &rows)?;
        }
        Ok(rows)
    }

    fn check(&self, rows: &[Vec<Option<String>>], rec: &Recorder) -> Result<(), Failure> {
        let e = &self.expect;
        let assertion = |d: String| Err(Failure::new(Reason::Assertion, d));
        if e.rows.is_some_and(|n| n != rows.len() as u64) {
            return assertion(format!("{} rows", rows.len()));
        }
        let first = rows.first().and_then(|r| r.first()).cloned().flatten();
        if let Some(want) = &e.value {
            if first.as_deref() != Some(want.as_str()) {
                return assertion(format!("first value is {first:?}"));
            }
        }
        if let Some(re) = &e.value_regex {
            if !first.as_deref().is_some_and(|v| re.is_match(v)) {
                return assertion(format!("first value {first:?} does not match"));
            }
        }
        let took = rec.timings.start.elapsed();
        if e.max_latency.is_some_and(|max| took > max) {
            return Err(Failure::new(Reason::Latency, format!("took {took:?}")));
        }
        Ok(())
    }
}

fn extract_values(
    v: &Values,
    columns: &[String],
    rows: &[Vec<Option<String>>],
) -> Result<Vec<QueryValue>, Failure> {
    let index = |name: &str| {
        columns.iter().position(|c| c == name).ok_or_else(|| {
            Failure::new(
                Reason::Assertion,
                format!("the result has no column `{name}`"),
            )
        })
    };
    let label = v.label.as_deref().map(index).transpose()?;
    let mut out = Vec::new();
    for (i, row) in rows.iter().take(v.max_rows).enumerate() {
        let row_label = match label {
            Some(l) => row[l]
                .clone()
                .unwrap_or_default()
                .chars()
                .take(MAX_LABEL)
                .collect(),
            None => i.to_string(),
        };
        for col in &v.columns {
            let text = row[index(col)?].as_deref().unwrap_or("NaN");
            let value = text.parse::<f64>().map_err(|_| {
                Failure::new(Reason::Assertion, format!("column `{col}` is not numeric"))
            })?;
            out.push(QueryValue {
                column: col.clone(),
                row: row_label.clone(),
                value,
            });
        }
    }
    Ok(out)
}

fn describe(c: &Config) -> String {
    let host = match c.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "?".into(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    let user = c.get_user().unwrap_or("");
    let db = c.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{host}:{port}/{db}")
}

/// Maps tokio-postgres errors to reasons.
fn failure(e: tokio_postgres::Error, connecting: bool) -> Failure {
    let detail = format!("postgres: {e}");
    let reason = if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            Reason::Auth
        } else if *code == SqlState::QUERY_CANCELED {
            Reason::Timeout
        } else if connecting {
            Reason::Protocol
        } else {
            Reason::QueryError
        }
    } else if let Some(io) = io_source(&e) {
        match io_reason(io) {
            Reason::Protocol | Reason::Io if connecting && detail.contains("TLS") => Reason::Tls,
            r => r,
        }
    } else if e.is_closed() {
        Reason::Reset
    } else if detail.contains("TLS") || detail.contains("tls") {
        Reason::Tls
    } else if detail.contains("timed out") {
        Reason::Timeout
    } else {
        Reason::Protocol
    };
    Failure::new(reason, detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Problems;
    use crate::redact::Redactor;

    fn build(dsn: &str) -> (Option<PostgresProbe>, Problems, Redactor) {
        let cfg = PostgresConfig {
            dsn: dsn.into(),
            query: "SELECT 1".into(),
            mode: PostgresMode::Fresh,
            tls: Default::default(),
            expect: Default::default(),
            values: None,
        };
        let mut p = Problems::default();
        let mut r = Redactor::default();
        (
            PostgresProbe::build(
                &cfg,
                Duration::from_secs(1),
                &mut BuildCx::new(&mut p, &mut r),
            ),
            p,
            r,
        )
    }

    #[test]
    fn dsn_passwords_are_secrets_and_targets_omit_them() {
        let (probe, p, r) = build("host=db port=6432 user=app password=s3cretpw dbname=shop");
        assert!(p.is_empty());
        assert_eq!(probe.unwrap().target(), "postgres://app@db:6432/shop");
        assert_eq!(r.redact("password s3cretpw"), "password ***");
        let (probe, _, r) = build("postgres://u:hunter22@127.0.0.1/x");
        assert_eq!(probe.unwrap().target(), "postgres://u@127.0.0.1:5432/x");
        assert_eq!(r.redact("hunter22"), "***");
    }

    #[test]
    fn dsn_options_are_kept_beside_the_statement_timeout() {
        let (probe, p, _) =
            build("host=db user=app options='-c search_path=shop -c work_mem=64MB'");
        assert!(p.is_empty());
        assert_eq!(
            probe.unwrap().config.get_options(),
            Some("-c search_path=shop -c work_mem=64MB -c statement_timeout=1000")
        );
        let (probe, _, _) = build("host=db user=app");
        assert_eq!(
            probe.unwrap().config.get_options(),
            Some("-c statement_timeout=1000")
        );
        let (probe, _, _) = build(
            "postgres://app@db/shop?options=-c%20search_path%3Dshop&application_name=billing",
        );
        let probe = probe.unwrap();
        assert_eq!(
            probe.config.get_options(),
            Some("-c search_path=shop -c statement_timeout=1000")
        );
        assert_eq!(probe.config.get_application_name(), Some("billing"));
    }

    #[test]
    fn bad_dsns_are_reported_without_echoing_them() {
        let (probe, p, _) = build("host=db password='unterminated");
        assert!(probe.is_none());
        assert!(!p.0[0].1.contains("unterminated"));
    }

    #[test]
    fn values_are_extracted_and_bounded() {
        let v = Values {
            columns: vec!["pct".into()],
            label: Some("state".into()),
            max_rows: 2,
        };
        let cols = vec!["state".to_string(), "pct".to_string()];
        let rows = vec![
            vec![Some("active".into()), Some("12.5".into())],
            vec![Some("idle".into()), Some("3".into())],
            vec![Some("other".into()), Some("1".into())],
        ];
        let out = extract_values(&v, &cols, &rows).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].row.as_str(), out[0].value), ("active", 12.5));
        let bad = Values {
            columns: vec!["nope".into()],
            label: None,
            max_rows: 5,
        };
        assert_eq!(
            extract_values(&bad, &cols, &rows).unwrap_err().reason,
            Reason::Assertion
        );
    }
}
