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

#[test]
fn schema_export_rewrites_a_registry_file_canonically() {
    let dir = tempfile::tempdir().unwrap();
    let _ = <common::TicketEvent as eventcore::DomainEvent>::EVENT_TYPES;
    let exported = eventcore::schema::registry().to_json();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let canonical = dir.path().join("registry.json");
    std::fs::write(&canonical, &exported).unwrap();
    // The same registry on one line, as a hand edit or another tool might leave it.
    let squashed = dir.path().join("squashed.json");
    let value: serde_json::Value = serde_json::from_str(&exported).unwrap();
    std::fs::write(&squashed, value.to_string()).unwrap();

    // To standard output: the canonical text, whatever the input's layout.
    let run = eventcore(&["schema", "export", "--registry", &path(&squashed)]).expect(0);
    assert_eq!(run.stdout, exported);
    // --check: canonical is fine, the squashed copy is not (exit 1) and is left alone.
    eventcore(&["schema", "export", "--registry", &path(&canonical), "--check"]).expect(0);
    let run = eventcore(&["schema", "export", "--registry", &path(&squashed), "--check"]).expect(1);
    assert!(run.stderr.contains("not in canonical form"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&squashed).unwrap(), value.to_string());
    // --out rewrites, in place too.
    let run = eventcore(&[
        "--json",
        "schema",
        "export",
        "--registry",
        &path(&squashed),
        "--out",
        &path(&squashed),
    ])
    .expect(0);
    assert_eq!(run.json()["changed"], true);
    assert_eq!(std::fs::read_to_string(&squashed).unwrap(), exported);
    eventcore(&["schema", "export", "--registry", &path(&squashed), "--check"]).expect(0);

    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, r#"{"events": "no"}"#).unwrap();
    let run = eventcore(&["schema", "export", "--registry", &path(&garbage)]).expect(2);
    assert!(run.stderr.contains("is not a registry file"), "{}", run.stderr);
    eventcore(&["schema", "export", "--registry", "/nonexistent.json"]).expect(4);
    let help = eventcore(&["schema", "export", "--help"]).expect(0);
    assert!(
        help.stdout.contains("cannot export your project's registry"),
        "{}",
        help.stdout
    );
}

#[test]
fn bad_bus_urls_and_unreachable_brokers_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let url = format!("sqlite:{}", db.display());
    for args in [
        vec!["--redis", "http://127.0.0.1:6379", "dead-letters", "list", "c"],
        vec!["--nats", "redis://127.0.0.1:4222", "dead-letters", "list", "c"],
        vec![
            "--redis",
            "redis://a",
            "--nats",
            "nats://b",
            "dead-letters",
            "list",
            "c",
        ],
        vec![
            "--store",
            &url,
            "--redis",
            "redis://127.0.0.1:6379",
            "streams",
            "list",
        ],
    ] {
        let run = eventcore(&args).expect(2);
        no_panic(&run);
        assert!(run.stderr.starts_with("error"), "{args:?}: {}", run.stderr);
    }
    let run = eventcore(&[
        "--redis",
        "redis://:s3cret@127.0.0.1:1",
        "dead-letters",
        "list",
        "c",
    ])
    .expect(4);
    no_panic(&run);
    assert!(
        run.stderr
            .contains("cannot connect to the bus at redis://:***@127.0.0.1:1"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("s3cret"), "{}", run.stderr);
    let run = eventcore(&["--nats", "nats://127.0.0.1:1", "dead-letters", "list", "c"]).expect(4);
    no_panic(&run);
    assert!(run.stderr.contains("nats://127.0.0.1:1"), "{}", run.stderr);
}
