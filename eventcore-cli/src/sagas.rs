//! `sagas list|show` and `deadlines list`: saga instances and their deadlines as the saga
//! runners stored them, read through `eventcore::saga::inspect`.

use chrono::{DateTime, Utc};
use eventcore::runner::RunnerStore;
use eventcore::saga::inspect::{self, StoredSagaInstance};
use eventcore::saga::{DeadDeadline, PendingDeadline, SagaDeadLetter};
use serde_json::{json, Value};

use crate::cli::{DeadlinesCommand, SagasCommand};
use crate::error::CliError;
use crate::output::{table, time, Output};

/// Widest state shown in a table cell; `sagas show` and `--json` print it whole.
const STATE_WIDTH: usize = 60;

/// Runs a `sagas` command.
pub async fn run<S: RunnerStore>(store: &S, command: SagasCommand, output: &Output) -> Result<(), CliError> {
    match command {
        SagasCommand::List { active, saga } => {
            let mut rows = Vec::new();
            for name in sagas(store, saga.as_deref()).await? {
                let trouble = Trouble::load(store, &name).await?;
                for instance in inspect::instances(store, &name).await? {
                    if active && instance.ended {
                        continue;
                    }
                    rows.push(Listed {
                        status: trouble.status(&instance),
                        instance,
                    });
                }
            }
            let value = json!(rows.iter().map(Listed::json).collect::<Vec<_>>());
            output.emit(&value, || {
                let cells: Vec<Vec<String>> = rows.iter().map(Listed::cells).collect();
                table(
                    &[
                        "SAGA",
                        "ID",
                        "STATUS",
                        "STAGE",
                        "STEPS",
                        "DEADLINES",
                        "NEXT_DUE",
                        "UPDATED_AT",
                        "STATE",
                    ],
                    &cells,
                    if active {
                        "no active saga instances"
                    } else {
                        "no saga instances"
                    },
                )
            })
        }
        SagasCommand::Show { id, saga } => show(store, &id, saga.as_deref(), output).await,
        SagasCommand::Replay { saga, key, all } => replay(store, &saga, key, all, output).await,
    }
}

/// Requests the replay of one dead-lettered command of `saga`, or of all of them.
async fn replay<S: RunnerStore>(
    store: &S,
    saga: &str,
    key: Option<String>,
    all: bool,
    output: &Output,
) -> Result<(), CliError> {
    sagas(store, Some(saga)).await?;
    let requested = match (key, all) {
        (_, true) => inspect::request_replay_all(store, saga).await?,
        (Some(key), false) => {
            if !inspect::request_replay(store, saga, &key).await? {
                return Err(CliError::NotFound(format!(
                    "saga `{saga}` has no dead-lettered command `{key}` (see `eventcore sagas show ID`)"
                )));
            }
            1
        }
        (None, false) => return Err(CliError::Usage("give a dead letter's key or --all".into())),
    };
    output.emit(&json!({ "saga": saga, "replay_requested": requested }), || {
        format!(
            "replay requested for {requested} command(s) of saga `{saga}`: its running owner dispatches \
             them again within a second or so, with their original idempotency keys"
        )
    })
}

/// Runs a `deadlines` command.
pub async fn deadlines<S: RunnerStore>(
    store: &S,
    command: DeadlinesCommand,
    output: &Output,
) -> Result<(), CliError> {
    let DeadlinesCommand::List { due_before, saga } = command;
    let mut rows: Vec<(String, PendingDeadline)> = Vec::new();
    for name in sagas(store, saga.as_deref()).await? {
        for deadline in inspect::deadlines(store, &name).await? {
            if due_before.is_none_or(|before| deadline.due < before) {
                rows.push((name.clone(), deadline));
            }
        }
    }
    rows.sort_by(|a, b| (a.1.due, &a.0, &a.1.key).cmp(&(b.1.due, &b.0, &b.1.key)));
    let now = Utc::now();
    let value = json!(rows
        .iter()
        .map(|(saga, d)| {
            let mut value = deadline_json(d, now);
            value["saga"] = json!(saga);
            value
        })
        .collect::<Vec<_>>());
    output.emit(&value, || {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|(saga, d)| {
                vec![
                    saga.clone(),
                    d.instance.clone(),
                    d.name.clone(),
                    time(&d.due),
                    if d.due <= now { "yes" } else { "-" }.to_owned(),
                    compact(&d.payload),
                ]
            })
            .collect();
        table(
            &["SAGA", "INSTANCE", "DEADLINE", "DUE", "OVERDUE", "PAYLOAD"],
            &cells,
            match due_before {
                Some(_) => "no deadlines due before then",
                None => "no pending deadlines",
            },
        )
    })
}

/// `sagas show ID`: the instance, its deadlines, its commands waiting and its dead letters.
async fn show<S: RunnerStore>(
    store: &S,
    id: &str,
    saga: Option<&str>,
    output: &Output,
) -> Result<(), CliError> {
    let mut found = Vec::new();
    for name in sagas(store, saga).await? {
        if let Some(instance) = inspect::instance(store, &name, id).await? {
            found.push(instance);
        }
    }
    let instance = match found.len() {
        0 => {
            return Err(CliError::NotFound(format!(
                "no saga instance with id `{id}`{} (see `eventcore sagas list`)",
                saga.map(|s| format!(" in saga `{s}`")).unwrap_or_default()
            )))
        }
        1 => found.remove(0),
        _ => {
            let names: Vec<&str> = found.iter().map(|i| i.saga.as_str()).collect();
            return Err(CliError::Usage(format!(
                "instance id `{id}` exists in sagas {}: pick one with --saga",
                names.join(", ")
            )));
        }
    };
    let name = instance.saga.clone();
    let trouble = Trouble::load(store, &name).await?;
    let commands: Vec<Value> = inspect::pending_commands(store, &name)
        .await?
        .into_iter()
        .filter(|c| c.instance == instance.id)
        .map(|c| json!({ "step": c.step, "index": c.index, "idempotency_key": c.idempotency_key, "command": c.command }))
        .collect();
    let letters: Vec<&SagaDeadLetter> = trouble
        .letters
        .iter()
        .filter(|l| l.command.instance == instance.id)
        .collect();
    let dead: Vec<&DeadDeadline> = trouble
        .deadlines
        .iter()
        .filter(|d| d.deadline.instance == instance.id)
        .collect();
    let now = Utc::now();
    let status = trouble.status(&instance);
    let mut value = Listed {
        instance: instance.clone(),
        status,
    }
    .json();
    value["associations"] = json!(instance.associations);
    value["state"] = instance.state.clone();
    value["deadlines"] = json!(instance
        .deadlines
        .iter()
        .map(|d| deadline_json(d, now))
        .collect::<Vec<_>>());
    value["pending_commands"] = json!(commands);
    value["dead_letters"] = json!(letters
        .iter()
        .map(|l| json!({ "key": l.key(), "step": l.command.step, "index": l.command.index, "command": l.command.command, "attempts": l.attempts, "error": l.error, "failed_at": time(&l.failed_at) }))
        .collect::<Vec<_>>());
    value["dead_deadlines"] = json!(dead
        .iter()
        .map(|d| json!({ "deadline": deadline_json(&d.deadline, now), "attempts": d.attempts, "error": d.error, "failed_at": time(&d.failed_at) }))
        .collect::<Vec<_>>());
    output.emit(&value, || {
        let mut out = String::new();
        let mut field = |key: &str, value: String| out.push_str(&format!("{key:<12} {value}\n"));
        field("saga:", instance.saga.clone());
        field("id:", instance.id.clone());
        field("status:", status.to_owned());
        if let Some(stage) = stage(&instance.state) {
            field("stage:", stage);
        }
        field("steps:", instance.version.to_string());
        field("updated_at:", updated(instance.updated_at.as_ref()));
        field("keys:", instance.associations.join(", "));
        out.push_str("state:\n");
        out.push_str(&indent(
            &serde_json::to_string_pretty(&instance.state).unwrap_or_default(),
        ));
        out.push_str(&section("deadlines", instance.deadlines.len()));
        for d in &instance.deadlines {
            out.push_str(&format!(
                "  {}  due {}  {}\n",
                d.name,
                time(&d.due),
                compact(&d.payload)
            ));
        }
        out.push_str(&section("pending commands", commands.len()));
        for c in &commands {
            out.push_str(&format!(
                "  step {} #{}  {}\n",
                c["step"],
                c["index"],
                compact(&c["command"])
            ));
        }
        out.push_str(&section("dead-lettered commands", letters.len()));
        for l in &letters {
            out.push_str(&format!(
                "  step {} #{}  {}  after {} attempt(s) at {}: {}\n    key (for `sagas replay`): {}\n",
                l.command.step,
                l.command.index,
                compact(&l.command.command),
                l.attempts,
                time(&l.failed_at),
                l.error,
                l.key()
            ));
        }
        out.push_str(&section("deadlines set aside", dead.len()));
        for d in &dead {
            out.push_str(&format!(
                "  {}  due {}  after {} attempt(s): {}\n",
                d.deadline.name,
                time(&d.deadline.due),
                d.attempts,
                d.error
            ));
        }
        out
    })
}

/// The sagas to read: `only` if it has run on the store, else every one that has.
async fn sagas<S: RunnerStore>(store: &S, only: Option<&str>) -> Result<Vec<String>, CliError> {
    let names = inspect::saga_names(store).await?;
    match only {
        None => Ok(names),
        Some(name) if names.iter().any(|n| n == name) => Ok(vec![name.to_owned()]),
        Some(name) => Err(CliError::NotFound(format!(
            "no saga named `{name}` has run on this store{}",
            if names.is_empty() {
                String::new()
            } else {
                format!(" (sagas: {})", names.join(", "))
            }
        ))),
    }
}

/// A saga's dead-lettered commands and set-aside deadlines: what makes an instance `failed`.
struct Trouble {
    letters: Vec<SagaDeadLetter>,
    deadlines: Vec<DeadDeadline>,
}

impl Trouble {
    async fn load<S: RunnerStore>(store: &S, saga: &str) -> Result<Self, CliError> {
        Ok(Self {
            letters: inspect::dead_letters(store, saga).await?,
            deadlines: inspect::dead_deadlines(store, saga).await?,
        })
    }

    /// `ended`; `failed` while a command it sent is dead-lettered or a deadline of it was set
    /// aside (it waits for what will not come); else `active`.
    fn status(&self, instance: &StoredSagaInstance) -> &'static str {
        if instance.ended {
            "ended"
        } else if self.letters.iter().any(|l| l.command.instance == instance.id)
            || self.deadlines.iter().any(|d| d.deadline.instance == instance.id)
        {
            "failed"
        } else {
            "active"
        }
    }
}

/// An instance in `sagas list`.
struct Listed {
    instance: StoredSagaInstance,
    status: &'static str,
}

impl Listed {
    fn json(&self) -> Value {
        let i = &self.instance;
        json!({
            "saga": i.saga,
            "id": i.id,
            "status": self.status,
            "stage": stage(&i.state),
            "ended": i.ended,
            "steps": i.version,
            "deadlines": i.deadlines.len(),
            "next_due": i.deadlines.iter().map(|d| d.due).min().as_ref().map(time),
            "updated_at": i.updated_at.as_ref().map(time),
            "state": i.state,
        })
    }

    fn cells(&self) -> Vec<String> {
        let i = &self.instance;
        vec![
            i.saga.clone(),
            i.id.clone(),
            self.status.to_owned(),
            stage(&i.state).unwrap_or_else(|| "-".to_owned()),
            i.version.to_string(),
            i.deadlines.len().to_string(),
            i.deadlines
                .iter()
                .map(|d| d.due)
                .min()
                .as_ref()
                .map_or_else(|| "-".to_owned(), time),
            updated(i.updated_at.as_ref()),
            truncate(&compact(&i.state), STATE_WIDTH),
        ]
    }
}

/// Where the instance stands by the saga's own account: the state's `stage`, `status` or `phase`
/// field, a string or an enum's variant name (`{"Cancelled": ...}` reads `Cancelled`).
fn stage(state: &Value) -> Option<String> {
    let field = ["stage", "status", "phase"]
        .iter()
        .find_map(|name| state.get(name))?;
    match field {
        Value::String(text) => Some(text.clone()),
        Value::Object(map) if map.len() == 1 => map.keys().next().cloned(),
        Value::Null => None,
        other => Some(truncate(&compact(other), 30)),
    }
}

fn deadline_json(d: &PendingDeadline, now: DateTime<Utc>) -> Value {
    json!({
        "instance": d.instance,
        "name": d.name,
        "key": d.key,
        "due": time(&d.due),
        "overdue": d.due <= now,
        "payload": d.payload,
    })
}

fn updated(at: Option<&DateTime<Utc>>) -> String {
    at.map_or_else(|| "-".to_owned(), time)
}

/// JSON on one line.
fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// At most `width` characters, with `...` when cut.
fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(3)).collect();
    cut.push_str("...");
    cut
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("  {line}\n")).collect()
}

fn section(what: &str, count: usize) -> String {
    if count == 0 {
        format!("{what}: none\n")
    } else {
        format!("{what}:\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_states_are_cut_with_an_ellipsis() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("abcdefgh", 6), "abc...");
        assert_eq!(truncate("ééééééé", 5), "éé...");
    }

    #[test]
    fn the_stage_is_read_from_the_state_by_convention() {
        assert_eq!(stage(&json!({"stage": "paging"})).as_deref(), Some("paging"));
        assert_eq!(
            stage(&json!({"status": {"Cancelled": "declined"}})).as_deref(),
            Some("Cancelled")
        );
        assert_eq!(stage(&json!({"phase": 3})).as_deref(), Some("3"));
        assert_eq!(stage(&json!({"stage": null})), None);
        assert_eq!(stage(&json!({"amount": 3})), None);
        assert_eq!(stage(&json!("Charging")), None);
    }
}
