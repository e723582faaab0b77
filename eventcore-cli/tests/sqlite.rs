//! The `eventcore` binary against an SQLite store populated through the library.

mod common;

use common::triage::saga_scenario;
use common::{eventcore, scenario};
use eventcore::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operates_an_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let store = SqliteStore::open(&path).await.unwrap();
    scenario(
        store,
        vec!["--store".into(), format!("sqlite:{}", path.display())],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shows_the_saga_instances_and_deadlines_of_an_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let store = SqliteStore::open(&path).await.unwrap();
    saga_scenario(
        store,
        vec!["--store".into(), format!("sqlite:{}", path.display())],
    )
    .await;
}

/// Counts tickets in a table of its own.
struct TicketCount;

impl eventcore::projection::SqliteTableProjection for TicketCount {
    fn name(&self) -> &str {
        "ticket_count"
    }

    fn event_types(&self) -> Vec<String> {
        vec!["ticket.opened".into()]
    }

    fn setup(
        &mut self,
        tx: &eventcore::rusqlite::Transaction<'_>,
    ) -> Result<(), eventcore::projection::TableError> {
        tx.execute_batch("CREATE TABLE IF NOT EXISTS ticket_count (n INTEGER NOT NULL); INSERT INTO ticket_count SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM ticket_count)")?;
        Ok(())
    }

    fn apply(
        &mut self,
        tx: &eventcore::rusqlite::Transaction<'_>,
        _: &eventcore::RecordedEvent,
    ) -> Result<(), eventcore::projection::TableError> {
        tx.execute("UPDATE ticket_count SET n = n + 1", [])?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_projection_is_listed_as_one_and_never_reset() {
    use std::time::Duration;

    use common::{Open, Ticket};
    use eventcore::projection::Projections;
    use eventcore::Repository;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let url = format!("sqlite:{}", path.display());
    Repository::<Ticket, _>::new(store.clone())
        .execute("t-1", Open { title: "a".into() })
        .await
        .unwrap();
    let running = Projections::new(store.clone()).with_tables(TicketCount).start();
    running.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    running.stop().await.unwrap();

    let status = eventcore(&["--store", &url, "--json", "projections", "status"])
        .expect(0)
        .json();
    assert_eq!(status[0]["name"], "ticket_count");
    assert_eq!(status[0]["kind"], "table_projection");
    assert_eq!(status[0]["state"], "stopped");
    let refused = eventcore(&[
        "--store",
        &url,
        "projections",
        "rebuild",
        "ticket_count",
        "--force",
    ])
    .expect(1);
    assert!(
        refused.stderr.contains("is a table projection"),
        "{}",
        refused.stderr
    );
    // Nothing was reset: the checkpoint stays past the event.
    let status = eventcore(&["--store", &url, "--json", "projections", "status"])
        .expect(0)
        .json();
    assert_eq!(status[0]["position"], 2);
}

#[tokio::test]
async fn the_sqlite_url_forms_and_the_environment_variable_open_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    drop(SqliteStore::open(&path).await.unwrap());
    for url in [
        format!("sqlite:{}", path.display()),
        format!("sqlite://{}", path.display()),
    ] {
        let run = eventcore(&["--store", &url, "head"]).expect(0);
        assert_eq!(run.stdout, "0\n");
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_eventcore"))
        .args(["--json", "head"])
        .env("EVENTCORE_STORE", format!("sqlite:{}", path.display()))
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "{\n  \"head\": 0\n}"
    );
}

#[test]
fn a_missing_file_is_an_error_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.db");
    let url = format!("sqlite:{}", path.display());
    for args in [
        vec!["--store", &url, "streams", "list"],
        vec![
            "--store",
            &url,
            "dead-letters",
            "discard",
            "c",
            "0190a5b0-0000-7000-8000-000000000000",
        ],
        vec!["--store", &url, "projections", "rebuild", "p"],
    ] {
        let run = eventcore(&args).expect(4);
        assert!(
            run.stderr.starts_with("error: cannot open the store at sqlite:"),
            "{}",
            run.stderr
        );
        assert!(!path.exists(), "the tool created {}", path.display());
    }
}

#[test]
fn a_file_that_is_not_an_eventcore_store_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "not a database").unwrap();
    let url = format!("sqlite:{}", path.display());
    eventcore(&["--store", &url, "head"]).expect(4);
    eventcore(&["--store", &url, "projections", "rebuild", "p", "--force"]).expect(4);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a database");
    // Another application's SQLite database: refused, and no eventcore table is added to it.
    let other = dir.path().join("other.db");
    let conn = eventcore::rusqlite::Connection::open(&other).unwrap();
    conn.execute_batch("CREATE TABLE notes (body TEXT)").unwrap();
    drop(conn);
    let url = format!("sqlite:{}", other.display());
    let run = eventcore(&["--store", &url, "streams", "list"]).expect(4);
    assert!(run.stderr.contains("holds no eventcore store"), "{}", run.stderr);
    eventcore(&["--store", &url, "projections", "rebuild", "p", "--force"]).expect(4);
    let conn = eventcore::rusqlite::Connection::open(&other).unwrap();
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 1);

    let run = eventcore(&["--store", dir.path().to_str().unwrap(), "head"]).expect(2);
    assert!(run.stderr.contains("unsupported store URL"), "{}", run.stderr);
    let run = eventcore(&["--store", &format!("sqlite:{}", dir.path().display()), "head"]).expect(4);
    assert!(run.stderr.contains("is not a file"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_follow_prints_events_as_they_commit() {
    use std::io::{BufRead, BufReader};
    use std::time::Duration;

    use common::{Open, Ticket};
    use eventcore::Repository;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let tickets = Repository::<Ticket, _>::new(store.clone());
    tickets
        .execute(
            "t-1",
            Open {
                title: "first".into(),
            },
        )
        .await
        .unwrap();
    /// Kills the tool however the test ends.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_eventcore"))
        .args([
            "--store",
            &format!("sqlite:{}", path.display()),
            "--json",
            "events",
            "tail",
            "--follow",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Lines arrive on a thread of their own, so a silent tool fails the test instead of hanging it.
    let stdout = child.stdout.take().unwrap();
    let child = Killed(child);
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    let next = || -> serde_json::Value {
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .expect("a line from --follow");
        serde_json::from_str(&line).unwrap()
    };
    let first = next();
    tickets
        .execute(
            "t-2",
            Open {
                title: "second".into(),
            },
        )
        .await
        .unwrap();
    let second = next();
    // Closing the pipe (`| head -2`) ends the tool quietly at a later write, with no panic.
    drop(lines);
    let mut child = child;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut more = 0;
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the tool kept running on a closed pipe"
        );
        more += 1;
        let title = format!("more {more}");
        tickets
            .execute(&format!("m-{more}"), Open { title })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success() && stderr.is_empty(), "{status}: {stderr}");
    assert_eq!(first["payload"]["title"], "first");
    assert_eq!(
        (second["payload"]["title"].as_str(), second["position"].as_u64()),
        (Some("second"), Some(2))
    );
}
