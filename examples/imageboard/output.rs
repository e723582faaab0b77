//! What the demo prints: to the terminal, or kept for a test to read.

use eventcore::bus::DeadLetter;
use eventcore::runner::RunnerStatus;

use crate::pipeline::GroupLag;

/// The demo's output.
#[derive(Debug, Default)]
pub struct Output {
    echo: bool,
    lines: Vec<String>,
}

impl Output {
    /// Output printed to stdout (and kept).
    pub fn printing() -> Self {
        Self {
            echo: true,
            lines: Vec::new(),
        }
    }

    /// Output only kept.
    #[allow(dead_code)] // read by tests/example_imageboard.rs
    pub fn capturing() -> Self {
        Self::default()
    }

    /// Prints `text` (one or more lines).
    pub fn line(&mut self, text: impl Into<String>) {
        let text = text.into();
        if self.echo {
            println!("{text}");
        }
        self.lines.extend(text.lines().map(str::to_owned));
    }

    /// Starts a section titled `title`.
    pub fn section(&mut self, title: &str) {
        self.line(format!("\n== {title}"));
    }

    /// Everything printed so far.
    #[allow(dead_code)] // read by tests/example_imageboard.rs
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// The relays' status and the consumer groups' lag, as tables.
    pub fn lags(&mut self, relays: &[RunnerStatus], groups: &[GroupLag]) {
        self.line(format!(
            "  {:<20} {:<6} {:>8} {:>6} {:>5}",
            "relay", "state", "next", "head", "lag"
        ));
        for s in relays {
            self.line(format!(
                "  {:<20} {:<6} {:>8} {:>6} {:>5}",
                s.name,
                s.state.to_string(),
                s.position,
                s.head,
                s.lag
            ));
        }
        self.line(format!(
            "  {:<20} {:>6} {:>8} {:>5} {:>5}",
            "consumer group", "read", "pending", "lag", "dead"
        ));
        for g in groups {
            self.line(format!(
                "  {:<20} {:>6} {:>8} {:>5} {:>5}",
                g.group, g.read, g.pending, g.lag, g.dead
            ));
        }
    }

    /// A dead letter, whole.
    pub fn dead_letter(&mut self, letter: &DeadLetter) {
        let event = &letter.event;
        let body = event
            .payload_json()
            .map(|p| p["body"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default();
        self.line(format!(
            "dead letter {} of `{}`: {} v{} in stream {} (position {})",
            letter.id,
            letter.consumer,
            event.event_type,
            event.event_version,
            event.stream_id,
            event.global_position
        ));
        self.line(format!(
            "  attempts {}, dead-lettered at {}",
            letter.attempts,
            letter.last_failure.format("%H:%M:%S%.3f")
        ));
        for (depth, error) in letter.error.iter().enumerate() {
            let label = if depth == 0 { "error" } else { "caused by" };
            self.line(format!("  {label}: {error}"));
        }
        self.line(format!(
            "  correlation {}, body \"{body}\"",
            event.correlation_id.as_deref().unwrap_or("-")
        ));
    }
}
