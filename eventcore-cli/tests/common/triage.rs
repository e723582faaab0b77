//! A saga over the tests' tickets, and the scenario of `sagas` and `deadlines` every backend runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eventcore::runner::{Backoff, RetryPolicy, RunnerStore};
use eventcore::saga::{ManualClock, SagaContext, Sagas};
use eventcore::{saga, CommandContext, Repository};
use serde::{Deserialize, Serialize};

use super::{eventcore_async, eventually, with_store, Open, Rejected, Ticket, TicketOpened};

/// What triage asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TriageCommand {
    /// Page the on-call engineer about a ticket.
    Page { title: String },
}

/// Escalates a ticket nobody picked up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Escalate {
    pub level: u32,
}

/// One instance per ticket title: pages on-call, escalates after a while (a minute for "vpn
/// down", an hour otherwise), and ends when escalated.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Triage {
    pub stage: String,
}

#[saga(commands = TriageCommand)]
impl Triage {
    #[start(key = title)]
    fn opened(&mut self, e: &TicketOpened, cx: &mut SagaContext<Self>) {
        self.stage = "paging".into();
        cx.send(TriageCommand::Page {
            title: e.title.clone(),
        });
        let wait = if e.title == "vpn down" { 60 } else { 3600 };
        cx.schedule(Duration::from_secs(wait), Escalate { level: 2 });
    }

    #[deadline]
    fn escalate(&mut self, d: &Escalate, cx: &mut SagaContext<Self>) {
        self.stage = format!("escalated to level {}", d.level);
        cx.end();
    }
}

/// `sagas list|show` and `deadlines list` against instances the runner stored on `store`:
/// one ended (its deadline fired), one active with a pending deadline, one failed (its page was
/// dead-lettered).
pub async fn saga_scenario<S: RunnerStore>(store: S, store_args: Vec<String>) {
    let cli = |rest: &[&str]| eventcore_async(with_store(&store_args, rest));
    // Before any saga ran: empty, and a named saga is unknown.
    let none = cli(&["sagas", "list"]).await.expect(0);
    assert_eq!(none.stdout, "no saga instances\n");
    cli(&["sagas", "list", "--saga", "triage"]).await.expect(3);
    assert_eq!(
        cli(&["deadlines", "list"]).await.expect(0).stdout,
        "no pending deadlines\n"
    );

    let pager_down = Arc::new(AtomicBool::new(true));
    let dispatcher = {
        let pager_down = Arc::clone(&pager_down);
        move |command: TriageCommand, _: CommandContext| {
            let down = pager_down.load(Ordering::SeqCst);
            async move {
                match command {
                    TriageCommand::Page { title } if title == "poison" && down => Err(Rejected(title)),
                    TriageCommand::Page { .. } => Ok(()),
                }
            }
        }
    };
    let clock = ManualClock::default();
    let fast = RetryPolicy {
        max_attempts: 2,
        backoff: Backoff::exponential(Duration::from_millis(1), Duration::from_millis(5)),
    };
    let sagas = Sagas::new(store.clone())
        .clock(clock.clone())
        .dispatch_retry(fast)
        .lease_ttl(Duration::from_secs(3))
        .with::<Triage, _>(dispatcher);
    let running = sagas.start();
    let tickets = Repository::<Ticket, _>::new(store.clone());
    for (id, title) in [("t-1", "printer jam"), ("t-2", "poison"), ("t-3", "vpn down")] {
        tickets.execute(id, Open { title: title.into() }).await.unwrap();
    }
    running.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    eventually("the poison page to be dead-lettered", async || {
        sagas.dead_letters::<Triage>().await.unwrap().len() == 1
    })
    .await;
    clock.advance(Duration::from_secs(120));
    eventually("the vpn deadline to fire", async || {
        sagas
            .instance::<Triage>("vpn down")
            .await
            .unwrap()
            .is_some_and(|i| i.ended)
    })
    .await;

    let listed = cli(&["--json", "sagas", "list"]).await.expect(0).json();
    let rows = listed.as_array().unwrap();
    let status = |id: &str| {
        let row = rows
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("{id}: {listed}"));
        (
            row["status"].as_str().unwrap().to_owned(),
            row["deadlines"].as_u64().unwrap(),
        )
    };
    assert_eq!(rows.len(), 3, "{listed}");
    assert_eq!(status("printer jam"), ("active".into(), 1));
    assert_eq!(status("poison"), ("failed".into(), 1));
    assert_eq!(status("vpn down"), ("ended".into(), 0));
    let vpn = rows.iter().find(|r| r["id"] == "vpn down").unwrap();
    assert_eq!(vpn["saga"], "triage");
    assert_eq!(vpn["state"]["stage"], "escalated to level 2");
    assert_eq!(vpn["stage"], "escalated to level 2");
    assert_eq!(vpn["steps"], 2);
    assert!(vpn["updated_at"].is_string(), "{vpn}");
    let active = cli(&["--json", "sagas", "list", "--active"])
        .await
        .expect(0)
        .json();
    let ids: Vec<&str> = active
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["poison", "printer jam"]);
    let human = cli(&["sagas", "list"]).await.expect(0).stdout;
    assert!(human.starts_with("SAGA"), "{human}");
    let jam = human
        .lines()
        .find(|l| l.contains("printer jam"))
        .unwrap_or_default();
    assert!(
        jam.contains("active") && jam.contains(r#"{"stage":"paging"}"#),
        "{human}"
    );

    let shown = cli(&["--json", "sagas", "show", "poison"]).await.expect(0).json();
    assert_eq!(shown["status"], "failed");
    assert_eq!(shown["associations"][0], "poison");
    assert_eq!(shown["deadlines"][0]["name"], "Escalate");
    assert_eq!(shown["deadlines"][0]["payload"]["level"], 2);
    assert_eq!(shown["dead_letters"][0]["attempts"], 2);
    assert_eq!(shown["dead_letters"][0]["command"]["Page"]["title"], "poison");
    let error = shown["dead_letters"][0]["error"].as_str().unwrap();
    assert!(error.contains("mail server rejected `poison`"), "{error}");
    let human = cli(&["sagas", "show", "poison", "--saga", "triage"])
        .await
        .expect(0)
        .stdout;
    assert!(
        human.starts_with("saga:        triage\nid:          poison\nstatus:      failed\n"),
        "{human}"
    );
    assert!(human.contains("dead-lettered commands:\n  step 1 #0"), "{human}");
    assert!(human.contains("pending commands: none"), "{human}");
    let missing = cli(&["sagas", "show", "nobody"]).await.expect(3);
    assert!(
        missing.stderr.contains("no saga instance with id `nobody`"),
        "{}",
        missing.stderr
    );
    cli(&["sagas", "show", "poison", "--saga", "nope"])
        .await
        .expect(3);

    // Deadlines: the two pending, earliest first; --due-before filters; bad times are usage errors.
    let deadlines = cli(&["--json", "deadlines", "list"]).await.expect(0).json();
    let instances: Vec<&str> = deadlines
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["instance"].as_str().unwrap())
        .collect();
    assert_eq!(instances.len(), 2, "{deadlines}");
    assert!(
        instances.contains(&"poison") && instances.contains(&"printer jam"),
        "{deadlines}"
    );
    assert_eq!(deadlines[0]["saga"], "triage");
    assert_eq!(deadlines[0]["overdue"], false);
    let due = deadlines[0]["due"].as_str().unwrap().to_owned();
    let before = cli(&["--json", "deadlines", "list", "--due-before", &due])
        .await
        .expect(0)
        .json();
    assert_eq!(before, serde_json::json!([]));
    let later = chrono::DateTime::parse_from_rfc3339(&due).unwrap() + chrono::Duration::hours(2);
    let after = cli(&["--json", "deadlines", "list", "--due-before", &later.to_rfc3339()])
        .await
        .expect(0)
        .json();
    assert_eq!(after.as_array().unwrap().len(), 2);
    let human = cli(&["deadlines", "list", "--due-before", &due])
        .await
        .expect(0)
        .stdout;
    assert_eq!(human, "no deadlines due before then\n");
    let human = cli(&["deadlines", "list"]).await.expect(0).stdout;
    assert!(human.starts_with("SAGA") && human.contains("Escalate"), "{human}");
    cli(&["deadlines", "list", "--due-before", "tomorrow"])
        .await
        .expect(2);

    // Lag: the saga is a runner of its own kind, and cannot be reset as a projection.
    let lag = cli(&["--json", "lag"]).await.expect(0).json();
    let triage = lag
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "saga.triage")
        .unwrap();
    assert_eq!(triage["kind"], "saga");
    assert_eq!(triage["lag"], 0);
    let status = cli(&["--json", "projections", "status"]).await.expect(0).json();
    assert!(
        status
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["name"] != "saga.triage"),
        "{status}"
    );
    let refused = cli(&["projections", "rebuild", "saga.triage"]).await.expect(1);
    assert!(refused.stderr.contains("is a saga"), "{}", refused.stderr);

    // Replay: the pager is back, and the dead-lettered page is dispatched again by the owner.
    cli(&["sagas", "replay", "triage"]).await.expect(2);
    cli(&["sagas", "replay", "triage", "no-such-key"]).await.expect(3);
    cli(&["sagas", "replay", "nope", "--all"]).await.expect(3);
    let key = shown["dead_letters"][0]["key"].as_str().unwrap().to_owned();
    pager_down.store(false, Ordering::SeqCst);
    let replayed = cli(&["--json", "sagas", "replay", "triage", &key])
        .await
        .expect(0)
        .json();
    assert_eq!(replayed["replay_requested"], 1);
    eventually("the replayed page to be dispatched", async || {
        sagas.dead_letters::<Triage>().await.unwrap().is_empty()
            && sagas.pending_commands::<Triage>().await.unwrap().is_empty()
    })
    .await;
    let shown = cli(&["--json", "sagas", "show", "poison"]).await.expect(0).json();
    assert_eq!(shown["status"], "active", "{shown}");
    running.stop().await.unwrap();
}
