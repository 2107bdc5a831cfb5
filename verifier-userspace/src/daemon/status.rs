//! The daemon's status document for `verifier status`: programs attached, event rates, losses,
//! store size, transactions in flight, pending verdicts, package index, mail counters and the
//! daemon's own memory.

use serde_json::{Value, json};

use super::Daemon;
use crate::{heap, store::format_time};

impl Daemon {
    pub(crate) fn status(&self) -> Value {
        json!({
            "healthy": self.healthy(),
            "uptime_secs": self.started.elapsed().as_secs(),
            "resident_bytes": heap::resident_bytes(),
            "backend": self.lock_recorder().backend().name(),
            "recorder": self.recorder_status(),
            "intake": {
                "events_stored": self.intake.events_applied(),
                "events_per_second": (self.intake.events_per_second() * 10.0).round() / 10.0,
                "stored_through": format_time(self.intake.applied_through()),
                "stored_through_ns": self.intake.applied_through(),
                "failed_batches": self.intake.failed_batches(),
            },
            "store": self.store_status(),
            "packages": self.index_status(),
            "trusted_package_managers": self.trusted_package_managers
                .lock()
                .map(|trusted| trusted.clone())
                .unwrap_or_default()
                .iter()
                .map(|(path, id)| json!({"path": path, "dev": id.dev, "ino": id.ino}))
                .collect::<Vec<_>>(),
            "mail": serde_json::to_value(self.mailer.stats()).unwrap_or(Value::Null),
            "socket": self.config.socket,
            "state_dir": self.config.state_dir,
        })
    }

    /// Healthy: programs attached, events flowing into the store, nothing failed to store.
    fn healthy(&self) -> bool {
        !self.lock_recorder().attached_programs().is_empty() && self.intake.failed_batches() == 0
    }

    fn recorder_status(&self) -> Value {
        let recorder = self.lock_recorder();
        let programs: Vec<Value> = recorder
            .attached_programs()
            .iter()
            .map(|p| json!({"name": p.name, "type": p.program_type, "hook": p.hook}))
            .collect();
        let counters = match recorder.counters() {
            Ok(counters) => json!({
                "emitted": counters.emitted(),
                "lost": counters.lost(),
                "per_program": counters.per_program.iter().map(|(name, c)| (name.to_string(), json!({
                    "total": c.total, "emitted": c.emitted, "ignored": c.ignored,
                    "ringbuf_full": c.ringbuf_full, "path_truncated": c.path_truncated, "errors": c.errors,
                }))).collect::<serde_json::Map<_, _>>(),
            }),
            Err(error) => json!({"error": error.to_string()}),
        };
        json!({"programs_attached": programs, "counters": counters})
    }

    fn store_status(&self) -> Value {
        let store = self.lock_store();
        let stats = store
            .stats()
            .map_or_else(|e| json!({"error": e.to_string()}), |s| json!(s));
        let in_flight = store.transactions_in_flight().map_or_else(
            |e| json!({"error": e.to_string()}),
            |transactions| {
                json!(transactions.iter().map(|t| json!({
                    "id": t.key.id, "root_pid": t.root_pid, "command_line": t.cmdline.to_string(),
                    "started": format_time(t.started),
                })).collect::<Vec<_>>())
            },
        );
        json!({"stats": stats, "transactions_in_flight": in_flight, "database": store.database_path()})
    }

    fn index_status(&self) -> Value {
        serde_json::to_value(self.read_index().stats()).unwrap_or(Value::Null)
    }
}
