//! Bad URLs, missing stores, malformed arguments and registry files: clear errors and exit
//! codes, never a panic.

mod common;

use common::eventcore;

fn no_panic(run: &common::Run) {
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn bad_store_urls_are_usage_errors() {
    for url in ["", "app.db", "mysql://h/db", "sqlite:", "sqlite://"] {
        let run = eventcore(&["--store", url, "head"]).expect(2);
        no_panic(&run);
        assert!(run.stderr.starts_with("error: "), "{url}: {}", run.stderr);
    }
    let run = eventcore(&["head"]).expect(2);
    assert!(run.stderr.contains("--store"), "{}", run.stderr);
    let run = eventcore(&["--store", "sqlite:x.db", "--schema", "s", "head"]).expect(2);
    assert!(run.stderr.contains("PostgreSQL stores only"), "{}", run.stderr);
}

#[test]
fn an_unreachable_server_fails_with_the_cause_and_no_password() {
    let run = eventcore(&["--store", "postgres://app:s3cret@127.0.0.1:1/db", "head"]).expect(4);
    no_panic(&run);
    assert!(
        run.stderr.contains("postgres://app:***@127.0.0.1:1/db"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("s3cret"), "{}", run.stderr);
    let run = eventcore(&["--store", "postgres://%zz@@/", "head"]).expect(4);
    no_panic(&run);
}

#[test]
fn unknown_commands_and_arguments_are_usage_errors() {
    eventcore(&["--store", "sqlite:x.db", "nonsense"]).expect(2);
    eventcore(&["--store", "sqlite:x.db", "streams", "list", "--limit", "-3"]).expect(2);
    eventcore(&["--store", "sqlite:x.db", "events", "tail", "--from", "x"]).expect(2);
    let help = eventcore(&["--help"]).expect(0);
    assert!(help.stdout.contains("Exit codes:"), "{}", help.stdout);
}

#[test]
fn schema_check_compares_registry_files() {
    let dir = tempfile::tempdir().unwrap();
    // The registry this test binary exports (the tests' domain is linked in), and a copy in
    // which a committed schema changed.
    let _ = <common::TicketEvent as eventcore::DomainEvent>::EVENT_TYPES;
    let exported = eventcore::schema::registry().to_json();
    let mut edited: serde_json::Value = serde_json::from_str(&exported).unwrap();
    let opened = edited["events"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|e| e["event_type"] == "ticket.opened")
        .unwrap();
    opened["schema"]["properties"]["title"]["type"] = "integer".into();
    let committed = dir.path().join("committed.json");
    let same = dir.path().join("same.json");
    let changed = dir.path().join("changed.json");
    std::fs::write(&committed, &exported).unwrap();
    std::fs::write(&same, &exported).unwrap();
    std::fs::write(&changed, edited.to_string()).unwrap();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();

    let run = eventcore(&[
        "schema",
        "check",
        "--committed",
        &path(&committed),
        "--current",
        &path(&same),
    ]);
    let run = run.expect(0);
    assert!(run.stdout.contains("matches"), "{}", run.stdout);
    let run = eventcore(&[
        "--json",
        "schema",
        "check",
        "--committed",
        &path(&committed),
        "--current",
        &path(&changed),
    ])
    .expect(1);
    let report = run.json();
    assert_eq!(report["ok"], false);
    assert!(
        report["findings"][0].as_str().unwrap().contains("ticket.opened"),
        "{report}"
    );

    let run = eventcore(&[
        "schema",
        "check",
        "--committed",
        "/nonexistent.json",
        "--current",
        &path(&same),
    ])
    .expect(4);
    assert!(
        run.stderr.contains("cannot read the registry file"),
        "{}",
        run.stderr
    );
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{ not json").unwrap();
    let run = eventcore(&[
        "schema",
        "check",
        "--committed",
        &path(&garbage),
        "--current",
        &path(&same),
    ])
    .expect(2);
    assert!(run.stderr.contains("is not a registry file"), "{}", run.stderr);
    eventcore(&[
        "schema",
        "check",
        "--current",
        &path(&same),
        "--compatibility",
        "SIDEWAYS",
    ])
    .expect(2);

    let out = dir.path().join("catalog");
    let run = eventcore(&[
        "schema",
        "catalog",
        "--registry",
        &path(&committed),
        "--out",
        &path(&out),
    ])
    .expect(0);
    assert!(run.stdout.contains("ticket.md"), "{}", run.stdout);
    let page = std::fs::read_to_string(out.join("ticket.md")).unwrap();
    assert!(page.contains("ticket.opened"), "{page}");
    assert!(std::fs::read_to_string(out.join("README.md"))
        .unwrap()
        .contains("flowchart"));
}
