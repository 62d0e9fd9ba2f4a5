use futures::StreamExt;
use prost::Message as _;

use super::*;
use crate::proto::longrunning::operation;
use crate::proto::rpc;
use crate::server::scheduler;
use crate::server::test_util::Fixture;

struct Bench {
    f: Fixture,
    exec: Executor,
}

impl Bench {
    fn new() -> Bench {
        Bench::with_extras(&[])
    }

    fn with_extras(extras: &[(&str, &str)]) -> Bench {
        let f = Fixture::new();
        let mut offered = scheduler::host_properties();
        offered.extend(extras.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let exec = Executor::start(
            f.store.clone(),
            f.ac.clone(),
            Arc::new(OperationTable::new(operations::DEFAULT_RETENTION)),
            WorkerConfig {
                work_dir: f.dir.path().join("store/work"),
                default_timeout: Duration::from_secs(60),
                max_timeout: Duration::from_secs(600),
                sandbox: Default::default(),
            },
            vec![scheduler::properties(&offered); 2],
        );
        Bench { f, exec }
    }

    /// Stores an action running `sh -c script` over `inputs`; returns its
    /// digest.
    fn action(
        &self,
        script: &str,
        inputs: &[(&str, &[u8])],
        tweak: impl FnOnce(&mut reapi::Action, &mut reapi::Command),
    ) -> Digest {
        let root = self.f.put_tree(inputs);
        let mut command = reapi::Command {
            arguments: vec!["/bin/sh".into(), "-c".into(), script.into()],
            environment_variables: vec![reapi::command::EnvironmentVariable {
                name: "PATH".into(),
                value: "/usr/bin:/bin".into(),
            }],
            output_paths: vec!["out".into()],
            ..Default::default()
        };
        let mut action = reapi::Action {
            input_root_digest: Some(root.to_proto()),
            ..Default::default()
        };
        tweak(&mut action, &mut command);
        action.command_digest = Some(self.f.put_message(&command).to_proto());
        self.f.put_message(&action)
    }

    async fn run(
        &self,
        digest: &Digest,
        skip_cache_lookup: bool,
    ) -> (Operation, reapi::ExecuteResponse) {
        let rx = self
            .exec
            .execute(reapi::ExecuteRequest {
                action_digest: Some(digest.to_proto()),
                skip_cache_lookup,
                ..Default::default()
            })
            .await
            .unwrap();
        finish(rx).await
    }
}

async fn finish(rx: watch::Receiver<Operation>) -> (Operation, reapi::ExecuteResponse) {
    let ops: Vec<Operation> = operations::follow(rx).map(|r| r.unwrap()).collect().await;
    let last = ops.last().unwrap().clone();
    assert!(last.done);
    assert!(ops[..ops.len() - 1].iter().all(|o| !o.done));
    (last.clone(), response(&last))
}

fn response(op: &Operation) -> reapi::ExecuteResponse {
    let Some(operation::Result::Response(any)) = &op.result else {
        panic!("operation without response: {op:?}");
    };
    reapi::ExecuteResponse::decode(any.value.as_slice()).unwrap()
}

fn code(r: &reapi::ExecuteResponse) -> tonic::Code {
    tonic::Code::from(r.status.as_ref().map_or(0, |s| s.code))
}

fn missing_subjects(s: &rpc::Status) -> Vec<String> {
    s.details
        .iter()
        .flat_map(|d| {
            rpc::PreconditionFailure::decode(d.value.as_slice())
                .unwrap()
                .violations
        })
        .map(|v| {
            assert_eq!(v.r#type, "MISSING");
            v.subject
        })
        .collect()
}

#[tokio::test]
async fn executes_caches_and_answers_from_the_cache() {
    let b = Bench::new();
    let d = b.action("cat in > out; echo done", &[("in", b"input\n")], |_, _| {});
    let (op, r) = b.run(&d, false).await;
    assert!(op.name.starts_with("operations/"));
    assert_eq!(code(&r), tonic::Code::Ok, "{r:?}");
    assert!(!r.cached_result);
    let result = r.result.unwrap();
    assert_eq!(result.exit_code, 0);
    let out = Digest::from_proto_opt(result.output_files[0].digest.as_ref()).unwrap();
    assert_eq!(b.f.store.read(&out).unwrap().unwrap(), b"input\n");
    let stdout = Digest::from_proto_opt(result.stdout_digest.as_ref()).unwrap();
    assert_eq!(b.f.store.read(&stdout).unwrap().unwrap(), b"done\n");
    assert!(
        result
            .execution_metadata
            .unwrap()
            .queued_timestamp
            .is_some()
    );

    let (_, again) = b.run(&d, false).await;
    assert!(again.cached_result);
    assert_eq!(again.result.unwrap().output_files, result.output_files);

    let (_, forced) = b.run(&d, true).await;
    assert!(!forced.cached_result, "skip_cache_lookup runs again");
}

#[tokio::test]
async fn failures_and_do_not_cache_are_not_cached() {
    let b = Bench::new();
    let failing = b.action("echo oops >&2; exit 3", &[], |_, _| {});
    let (_, r) = b.run(&failing, false).await;
    assert_eq!(code(&r), tonic::Code::Ok);
    assert_eq!(r.result.unwrap().exit_code, 3);
    assert!(b.f.ac.get(&failing).unwrap().is_none());

    let volatile = b.action("date > out", &[], |a, _| a.do_not_cache = true);
    let (_, r) = b.run(&volatile, false).await;
    assert_eq!(r.result.unwrap().exit_code, 0);
    assert!(b.f.ac.get(&volatile).unwrap().is_none());
}

#[tokio::test]
async fn missing_blobs_are_named_in_a_precondition_failure() {
    let b = Bench::new();
    let nowhere = Digest::of_bytes(b"no such action");
    let (_, r) = b.run(&nowhere, false).await;
    assert_eq!(code(&r), tonic::Code::FailedPrecondition);
    assert_eq!(
        missing_subjects(r.status.as_ref().unwrap()),
        vec![format!("blobs/{}/{}", nowhere.hex(), nowhere.size())]
    );

    // An input file whose blob was never uploaded.
    let ghost = Digest::of_bytes(b"ghost input");
    let t = crate::cas::tree::build(&[crate::cas::tree::Entry::file("in", ghost, false)]).unwrap();
    for (d, bytes) in &t.directories {
        b.f.store.write(d, bytes).unwrap();
    }
    let d = b.action("cat in", &[], |a, _| {
        a.input_root_digest = Some(t.root.to_proto())
    });
    let (_, r) = b.run(&d, false).await;
    assert_eq!(code(&r), tonic::Code::FailedPrecondition, "{r:?}");
    assert_eq!(
        missing_subjects(r.status.as_ref().unwrap()),
        vec![format!("blobs/{}/{}", ghost.hex(), ghost.size())]
    );
}

#[tokio::test]
async fn invalid_commands_and_requests() {
    let b = Bench::new();
    let d = b.action("true", &[], |_, c| {
        c.output_paths = vec!["../escape".into()]
    });
    let (_, r) = b.run(&d, false).await;
    assert_eq!(code(&r), tonic::Code::InvalidArgument, "{r:?}");

    let e = b
        .exec
        .execute(reapi::ExecuteRequest {
            action_digest: Some(reapi::Digest {
                hash: "short".into(),
                size_bytes: 3,
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn unmatched_platforms_fail_at_once() {
    let b = Bench::with_extras(&[("Pool", "fast")]);
    let prop = |k: &str, v: &str| reapi::platform::Property {
        name: k.into(),
        value: v.into(),
    };
    let ok = b.action("true", &[], |a, _| {
        a.platform = Some(reapi::Platform {
            properties: vec![prop("Pool", "fast")],
        })
    });
    let (_, r) = b.run(&ok, false).await;
    assert_eq!(code(&r), tonic::Code::Ok);

    // Command.platform counts when Action.platform is unset.
    let bad = b.action("true", &[], |_, c| {
        c.platform = Some(reapi::Platform {
            properties: vec![prop("Pool", "slow")],
        })
    });
    let (_, r) = b.run(&bad, false).await;
    assert_eq!(code(&r), tonic::Code::FailedPrecondition);
    assert_eq!(
        r.status.unwrap().message,
        "no worker matches platform property Pool=slow (workers offer Pool=fast)"
    );
}

/// REAPI: platform properties MUST be sorted by name, then value.
#[tokio::test]
async fn unsorted_platforms_are_refused_naming_the_property() {
    let b = Bench::with_extras(&[("Pool", "fast")]);
    let prop = |k: &str, v: &str| reapi::platform::Property {
        name: k.into(),
        value: v.into(),
    };
    for (field, action_side) in [("action.platform", true), ("command.platform", false)] {
        let d = b.action("true", &[], |a, c| {
            let unsorted = Some(reapi::Platform {
                properties: vec![prop("Pool", "fast"), prop("ISA", "x86-64")],
            });
            if action_side {
                a.platform = unsorted;
            } else {
                c.platform = unsorted;
            }
        });
        let (_, r) = b.run(&d, false).await;
        assert_eq!(code(&r), tonic::Code::InvalidArgument, "{field}: {r:?}");
        let message = r.status.unwrap().message;
        assert!(
            message.contains(field) && message.contains("ISA=x86-64 comes after Pool=fast"),
            "{message}"
        );
    }
    // Same name, values out of order.
    let d = b.action("true", &[], |a, _| {
        a.platform = Some(reapi::Platform {
            properties: vec![prop("Pool", "slow"), prop("Pool", "fast")],
        })
    });
    let (_, r) = b.run(&d, false).await;
    assert_eq!(code(&r), tonic::Code::InvalidArgument, "{r:?}");
}

#[tokio::test]
async fn timeouts_are_deadline_exceeded_with_partial_results() {
    let b = Bench::new();
    let d = b.action("echo started; sleep 30", &[], |a, _| {
        a.timeout = Some(prost_types::Duration {
            seconds: 1,
            nanos: 0,
        })
    });
    let (_, r) = b.run(&d, false).await;
    assert_eq!(code(&r), tonic::Code::DeadlineExceeded, "{r:?}");
    let partial = r.result.unwrap();
    let stdout = Digest::from_proto_opt(partial.stdout_digest.as_ref()).unwrap();
    assert_eq!(b.f.store.read(&stdout).unwrap().unwrap(), b"started\n");
    assert!(b.f.ac.get(&d).unwrap().is_none());
}

#[tokio::test]
async fn identical_executions_share_one_operation() {
    let b = Bench::new();
    let d = b.action("sleep 0.5; echo $$ > out", &[], |_, _| {});
    let req = reapi::ExecuteRequest {
        action_digest: Some(d.to_proto()),
        ..Default::default()
    };
    let rx1 = b.exec.execute(req.clone()).await.unwrap();
    let rx2 = b.exec.execute(req.clone()).await.unwrap();
    let rx3 = b
        .exec
        .execute(reapi::ExecuteRequest {
            skip_cache_lookup: true,
            ..req
        })
        .await
        .unwrap();
    let (op1, r1) = finish(rx1).await;
    let (op2, r2) = finish(rx2).await;
    let (op3, _) = finish(rx3).await;
    assert_eq!(op1.name, op2.name);
    assert_ne!(op1.name, op3.name, "skip_cache_lookup runs on its own");
    assert_eq!(r1, r2);

    // WaitExecution on a finished operation returns its final state.
    let (again, _) = finish(b.exec.wait(&op1.name).unwrap()).await;
    assert_eq!(again, op1);
    assert_eq!(
        b.exec.wait("operations/nope").unwrap_err().code(),
        tonic::Code::NotFound
    );
}
