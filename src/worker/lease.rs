//! The lease book of one bot session: which leases the bot runs, which it
//! has finished but not yet reported, and what the next UpdateBotSession
//! says. Pure: no gRPC, no clock, no threads.
//!
//! The protocol as BuildGrid 0.9.1 plays it: new leases arrive ACTIVE in a
//! BotSession response; the bot echoes every lease it still runs as ACTIVE
//! (a keepalive), and reports a finished one once as COMPLETED with
//! `result = Any(ActionResult)` and a status. A lease the server stops
//! listing was cancelled or given to another bot: the bot forgets it and
//! discards its result. A bot that is shutting down hands back leases it
//! will not run by completing them UNAVAILABLE, which BuildGrid retries on
//! another bot.

use std::collections::BTreeMap;

use prost::Message;

use crate::cas::Digest;
use crate::proto::{reapi, rpc, rwapi};
use crate::runner::RunError;

/// `Any.type_url` of an `Action` payload.
pub const ACTION_TYPE_URL: &str = "type.googleapis.com/build.bazel.remote.execution.v2.Action";
/// `Any.type_url` of a `Digest` payload (the Action is in the CAS).
pub const DIGEST_TYPE_URL: &str = "type.googleapis.com/build.bazel.remote.execution.v2.Digest";
/// `Any.type_url` of a lease's `ActionResult`.
pub const ACTION_RESULT_TYPE_URL: &str =
    "type.googleapis.com/build.bazel.remote.execution.v2.ActionResult";

/// What a lease asks the bot to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Work {
    /// The Action itself, inline.
    Action(Box<reapi::Action>),
    /// The Action's digest: fetch it from the CAS.
    ActionDigest(Digest),
}

/// Decodes a lease payload (`Any(Action)` or `Any(Digest)`).
pub fn decode_payload(payload: Option<&prost_types::Any>) -> Result<Work, String> {
    let Some(any) = payload else {
        return Err("lease has no payload".into());
    };
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    match name {
        "build.bazel.remote.execution.v2.Action" => reapi::Action::decode(any.value.as_slice())
            .map(|a| Work::Action(Box::new(a)))
            .map_err(|e| format!("lease payload Action does not decode: {e}")),
        "build.bazel.remote.execution.v2.Digest" => {
            let d = reapi::Digest::decode(any.value.as_slice())
                .map_err(|e| format!("lease payload Digest does not decode: {e}"))?;
            Digest::from_proto(&d)
                .map(Work::ActionDigest)
                .map_err(|e| format!("lease payload Digest: {e}"))
        }
        _ => Err(format!(
            "lease payload of type {:?} is neither an Action nor a Digest",
            any.type_url
        )),
    }
}

/// How a lease ended, as reported to the server.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The ActionResult (also a timed-out run's partial one).
    pub result: Option<reapi::ActionResult>,
    /// The lease's status: OK when the command ran (whatever its exit code).
    pub status: rpc::Status,
}

impl Outcome {
    pub fn ok(result: reapi::ActionResult) -> Outcome {
        Outcome {
            result: Some(result),
            status: rpc::Status::default(),
        }
    }

    /// A failure with no result.
    pub fn error(code: tonic::Code, message: impl Into<String>) -> Outcome {
        Outcome {
            result: None,
            status: rpc::Status {
                code: code as i32,
                message: message.into(),
                details: Vec::new(),
            },
        }
    }

    /// Blobs the action needs are in no CAS: FAILED_PRECONDITION with a
    /// `PreconditionFailure` naming each, so the client uploads and retries.
    pub fn missing(ds: &[Digest]) -> Outcome {
        Outcome {
            result: None,
            status: crate::cas::missing::status(ds),
        }
    }

    /// The runner's answer as a lease outcome: MissingBlobs →
    /// FAILED_PRECONDITION, InvalidArgument → INVALID_ARGUMENT, Timeout →
    /// DEADLINE_EXCEEDED with the partial result, Internal → INTERNAL
    /// (which BuildGrid retries, possibly on another bot).
    pub fn from_run(r: Result<reapi::ActionResult, RunError>) -> Outcome {
        match r {
            Ok(result) => Outcome::ok(result),
            Err(RunError::MissingBlobs(ds)) => Outcome::missing(&ds),
            Err(e @ RunError::InvalidArgument(_)) => {
                Outcome::error(tonic::Code::InvalidArgument, e.to_string())
            }
            Err(RunError::Timeout { partial, limit }) => Outcome {
                result: Some(*partial),
                status: rpc::Status {
                    code: tonic::Code::DeadlineExceeded as i32,
                    message: format!("action timed out after {limit}"),
                    details: Vec::new(),
                },
            },
            Err(e @ RunError::Internal(_)) => Outcome::error(tonic::Code::Internal, e.to_string()),
        }
    }

    fn to_lease(&self, id: &str) -> rwapi::Lease {
        rwapi::Lease {
            id: id.to_string(),
            state: rwapi::LeaseState::Completed as i32,
            status: Some(self.status.clone()),
            result: self.result.as_ref().map(|r| prost_types::Any {
                type_url: ACTION_RESULT_TYPE_URL.into(),
                value: r.encode_to_vec(),
            }),
            ..Default::default()
        }
    }
}

/// A lease to start running.
#[derive(Clone, Debug, PartialEq)]
pub struct Start {
    pub lease_id: String,
    /// The work, or why the payload is unusable (the caller completes the
    /// lease INVALID_ARGUMENT with it).
    pub work: Result<Work, String>,
}

#[derive(Clone, Debug, PartialEq)]
enum State {
    Running,
    Done(Box<Outcome>),
}

/// The leases of one session.
#[derive(Debug, Default)]
pub struct Book {
    leases: BTreeMap<String, State>,
    draining: bool,
}

impl Book {
    pub fn new() -> Book {
        Book::default()
    }

    /// From now on, new leases are handed back instead of run.
    pub fn stop_accepting(&mut self) {
        self.draining = true;
    }

    pub fn draining(&self) -> bool {
        self.draining
    }

    /// Leases being run.
    pub fn running(&self) -> usize {
        self.leases
            .values()
            .filter(|s| matches!(s, State::Running))
            .count()
    }

    /// Whether a finished lease waits to be reported.
    pub fn has_done(&self) -> bool {
        self.leases.values().any(|s| matches!(s, State::Done(_)))
    }

    /// Nothing running and nothing to report.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    /// The leases for the next UpdateBotSession: running ones ACTIVE,
    /// finished ones COMPLETED. Also returns the ids reported as completed,
    /// to pass to [`Book::on_response`] when the call succeeds.
    pub fn report(&self) -> (Vec<rwapi::Lease>, Vec<String>) {
        let mut leases = Vec::new();
        let mut completed = Vec::new();
        for (id, state) in &self.leases {
            match state {
                State::Running => leases.push(rwapi::Lease {
                    id: id.clone(),
                    state: rwapi::LeaseState::Active as i32,
                    ..Default::default()
                }),
                State::Done(outcome) => {
                    leases.push(outcome.to_lease(id));
                    completed.push(id.clone());
                }
            }
        }
        (leases, completed)
    }

    /// Takes in the server's answer to an update that reported `completed`
    /// (now acknowledged). Returns the leases to start.
    pub fn on_response(&mut self, server: &[rwapi::Lease], completed: &[String]) -> Vec<Start> {
        for id in completed {
            if matches!(self.leases.get(id), Some(State::Done(_))) {
                self.leases.remove(id);
            }
        }
        let active = |l: &rwapi::Lease| {
            l.state == rwapi::LeaseState::Active as i32
                || l.state == rwapi::LeaseState::Pending as i32
        };
        // Running leases the server no longer lists were cancelled or
        // reassigned: forget them; their results will be dropped.
        let listed: std::collections::HashSet<&str> = server
            .iter()
            .filter(|l| active(l))
            .map(|l| l.id.as_str())
            .collect();
        self.leases
            .retain(|id, s| !matches!(s, State::Running) || listed.contains(id.as_str()));

        let mut starts = Vec::new();
        for lease in server.iter().filter(|l| active(l)) {
            if self.leases.contains_key(&lease.id) {
                continue;
            }
            if self.draining {
                self.leases.insert(
                    lease.id.clone(),
                    State::Done(Box::new(Outcome::error(
                        tonic::Code::Unavailable,
                        "the bot is shutting down; lease handed back",
                    ))),
                );
                continue;
            }
            self.leases.insert(lease.id.clone(), State::Running);
            starts.push(Start {
                lease_id: lease.id.clone(),
                work: decode_payload(lease.payload.as_ref()),
            });
        }
        starts
    }

    /// Records how a lease ended. False when the lease is no longer ours
    /// (cancelled or reassigned meanwhile): the outcome is dropped.
    pub fn finish(&mut self, lease_id: &str, outcome: Outcome) -> bool {
        match self.leases.get_mut(lease_id) {
            Some(s @ State::Running) => {
                *s = State::Done(Box::new(outcome));
                true
            }
            _ => false,
        }
    }

    /// Gives up on every running lease (shutdown grace expired): each is
    /// completed UNAVAILABLE so the scheduler retries it elsewhere.
    pub fn abandon_running(&mut self) -> usize {
        let mut n = 0;
        for s in self.leases.values_mut() {
            if matches!(s, State::Running) {
                *s = State::Done(Box::new(Outcome::error(
                    tonic::Code::Unavailable,
                    "the bot shut down before the action finished; lease abandoned",
                )));
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::TimeLimit;

    fn action_any(a: &reapi::Action) -> prost_types::Any {
        prost_types::Any {
            type_url: ACTION_TYPE_URL.into(),
            value: a.encode_to_vec(),
        }
    }

    fn active(id: &str) -> rwapi::Lease {
        let action = reapi::Action {
            do_not_cache: true,
            ..Default::default()
        };
        rwapi::Lease {
            id: id.into(),
            state: rwapi::LeaseState::Active as i32,
            payload: Some(action_any(&action)),
            ..Default::default()
        }
    }

    fn result(code: i32) -> reapi::ActionResult {
        reapi::ActionResult {
            exit_code: code,
            ..Default::default()
        }
    }

    #[test]
    fn payloads_decode_as_action_or_digest() {
        let a = reapi::Action {
            do_not_cache: true,
            ..Default::default()
        };
        assert_eq!(
            decode_payload(Some(&action_any(&a))),
            Ok(Work::Action(Box::new(a)))
        );
        let d = Digest::of_bytes(b"action");
        let any = prost_types::Any {
            type_url: DIGEST_TYPE_URL.into(),
            value: d.to_proto().encode_to_vec(),
        };
        assert_eq!(decode_payload(Some(&any)), Ok(Work::ActionDigest(d)));
        let bad_digest = prost_types::Any {
            type_url: DIGEST_TYPE_URL.into(),
            value: reapi::Digest {
                hash: "xyz".into(),
                size_bytes: 1,
            }
            .encode_to_vec(),
        };
        assert!(decode_payload(Some(&bad_digest)).is_err());
        let other = prost_types::Any {
            type_url: "type.googleapis.com/google.protobuf.Empty".into(),
            value: Vec::new(),
        };
        assert!(decode_payload(Some(&other)).unwrap_err().contains("Empty"));
        assert!(decode_payload(None).is_err());
    }

    #[test]
    fn a_lease_runs_is_kept_alive_then_completes_once() {
        let mut book = Book::new();
        let starts = book.on_response(&[active("L1")], &[]);
        assert_eq!(starts.len(), 1);
        assert_eq!(starts[0].lease_id, "L1");
        assert!(matches!(starts[0].work, Ok(Work::Action(_))));

        // Keepalive: the lease is echoed ACTIVE, with no payload.
        let (leases, completed) = book.report();
        assert_eq!(leases.len(), 1);
        assert_eq!(leases[0].state, rwapi::LeaseState::Active as i32);
        assert!(leases[0].payload.is_none());
        assert!(completed.is_empty());
        // The server echoes it: nothing new starts.
        assert!(book.on_response(&leases, &completed).is_empty());
        assert_eq!(book.running(), 1);

        assert!(book.finish("L1", Outcome::ok(result(3))));
        let (leases, completed) = book.report();
        assert_eq!(completed, ["L1"]);
        let l = &leases[0];
        assert_eq!(l.state, rwapi::LeaseState::Completed as i32);
        assert_eq!(l.status.as_ref().unwrap().code, 0);
        let any = l.result.as_ref().unwrap();
        assert_eq!(any.type_url, ACTION_RESULT_TYPE_URL);
        assert_eq!(
            reapi::ActionResult::decode(any.value.as_slice())
                .unwrap()
                .exit_code,
            3
        );
        // Acknowledged; the same answer brings the next lease.
        let starts = book.on_response(&[active("L2")], &completed);
        assert_eq!(starts.len(), 1);
        assert_eq!(starts[0].lease_id, "L2");
        assert!(!book.has_done());
        assert_eq!(book.running(), 1);
    }

    #[test]
    fn a_failed_update_reports_the_completion_again() {
        let mut book = Book::new();
        book.on_response(&[active("L1")], &[]);
        book.finish("L1", Outcome::ok(result(0)));
        let (_, completed) = book.report();
        assert_eq!(completed, ["L1"]);
        // The call failed: on_response is not called; the next report
        // still carries the completion.
        let (leases, again) = book.report();
        assert_eq!(again, ["L1"]);
        assert_eq!(leases[0].state, rwapi::LeaseState::Completed as i32);
    }

    #[test]
    fn a_lease_the_server_drops_is_forgotten_and_its_result_discarded() {
        let mut book = Book::new();
        book.on_response(&[active("L1")], &[]);
        let cancelled = rwapi::Lease {
            state: rwapi::LeaseState::Cancelled as i32,
            ..active("L1")
        };
        assert!(book.on_response(&[cancelled], &[]).is_empty());
        assert!(book.is_empty());
        assert!(!book.finish("L1", Outcome::ok(result(0))));
        assert!(book.report().0.is_empty());

        // Simply absent from the answer: the same.
        book.on_response(&[active("L2")], &[]);
        book.on_response(&[], &[]);
        assert!(!book.finish("L2", Outcome::ok(result(0))));
    }

    #[test]
    fn a_lease_finished_while_the_update_was_in_flight_is_reported_next() {
        let mut book = Book::new();
        book.on_response(&[active("L1")], &[]);
        let (sent, completed) = book.report();
        book.finish("L1", Outcome::ok(result(0)));
        // The server echoes the ACTIVE lease it was sent.
        assert!(book.on_response(&sent, &completed).is_empty());
        let (leases, completed) = book.report();
        assert_eq!(completed, ["L1"]);
        assert_eq!(leases[0].state, rwapi::LeaseState::Completed as i32);
    }

    #[test]
    fn a_draining_bot_hands_new_leases_back_and_can_abandon_running_ones() {
        let mut book = Book::new();
        book.on_response(&[active("L1")], &[]);
        book.stop_accepting();
        let starts = book.on_response(&[active("L1"), active("L2")], &[]);
        assert!(starts.is_empty(), "no new work while draining");
        let (leases, completed) = book.report();
        assert_eq!(completed, ["L2"]);
        let l2 = leases.iter().find(|l| l.id == "L2").unwrap();
        assert_eq!(
            l2.status.as_ref().unwrap().code,
            tonic::Code::Unavailable as i32
        );
        assert!(l2.result.is_none());

        assert_eq!(book.abandon_running(), 1);
        let (leases, completed) = book.report();
        assert_eq!(completed, ["L1", "L2"]);
        assert!(
            leases
                .iter()
                .all(|l| l.state == rwapi::LeaseState::Completed as i32)
        );
        book.on_response(&[], &completed);
        assert!(book.is_empty());
    }

    #[test]
    fn runner_errors_map_to_lease_statuses() {
        use tonic::Code;
        let d = Digest::of_bytes(b"gone");
        let o = Outcome::from_run(Err(RunError::MissingBlobs(vec![d])));
        assert_eq!(o.status.code, Code::FailedPrecondition as i32);
        let pf = rpc::PreconditionFailure::decode(o.status.details[0].value.as_slice()).unwrap();
        assert_eq!(pf.violations[0].r#type, "MISSING");
        assert_eq!(
            pf.violations[0].subject,
            format!("blobs/{}/{}", d.hex(), d.size())
        );
        let o = Outcome::from_run(Err(RunError::InvalidArgument("bad".into())));
        assert_eq!(o.status.code, Code::InvalidArgument as i32);
        assert!(o.result.is_none());
        let o = Outcome::from_run(Err(RunError::Timeout {
            partial: Box::new(result(137)),
            limit: TimeLimit::Action(std::time::Duration::from_secs(30)),
        }));
        assert_eq!(o.status.code, Code::DeadlineExceeded as i32);
        assert!(
            o.status.message.contains("after 30s") && o.status.message.contains("--timeout-action"),
            "{}",
            o.status.message
        );
        assert_eq!(o.result.unwrap().exit_code, 137);
        let o = Outcome::from_run(Err(RunError::Internal("disk".into())));
        assert_eq!(o.status.code, Code::Internal as i32);
        let o = Outcome::from_run(Ok(result(1)));
        assert_eq!(o.status.code, 0);
        assert_eq!(o.result.unwrap().exit_code, 1);
    }
}
