//! `ActionCache`: GetActionResult and UpdateActionResult over the disk
//! action cache, plus the checks `execution` shares.
//!
//! A cached result is only served while everything it refers to (output
//! files, the files inside output trees, stdout and stderr) is still in the
//! CAS: the CAS evicts on its own schedule, and a client handed a result it
//! cannot download would fail instead of simply running the action again.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use prost::Message as _;

use super::error::{ServiceError, blocking, check_digest_function, digest_arg};
use crate::cas::Digest;
use crate::cas::store::{BlobStore, DiskActionCache};
use crate::proto::reapi;
use crate::proto::reapi::action_cache_server::ActionCache;

/// Most bytes inlined into one result at the client's request; larger
/// outputs stay in the CAS only, as the spec allows.
pub const INLINE_LIMIT: u64 = 1 << 20;

/// What the client asked to have inlined.
#[derive(Clone, Debug, Default)]
pub struct InlineRequest {
    pub stdout: bool,
    pub stderr: bool,
    pub files: Vec<String>,
}

/// The cached result for `action`, if there is one and all its blobs are
/// still stored.
pub fn lookup(
    store: &dyn BlobStore,
    ac: &DiskActionCache,
    action: &Digest,
) -> Result<Option<reapi::ActionResult>, ServiceError> {
    match ac.get(action)? {
        Some(result) => Ok(usable(store, action, result)),
        None => Ok(None),
    }
}

/// `result`, stored for `action`, if all its blobs are still stored.
fn usable(
    store: &dyn BlobStore,
    action: &Digest,
    result: reapi::ActionResult,
) -> Option<reapi::ActionResult> {
    match missing_outputs(store, &result) {
        Ok(missing) if missing.is_empty() => Some(result),
        Ok(missing) => {
            tracing::debug!(%action, missing = missing.len(), "AC entry refers to evicted blobs");
            None
        }
        Err(e) => {
            tracing::warn!(%action, error = %e, "ignoring a malformed AC entry");
            None
        }
    }
}

/// Every blob `result` refers to that the CAS lacks. Output trees are read
/// to check the files inside them.
pub fn missing_outputs(
    store: &dyn BlobStore,
    result: &reapi::ActionResult,
) -> Result<Vec<Digest>, ServiceError> {
    let mut wanted = Vec::new();
    let mut missing = Vec::new();
    for f in &result.output_files {
        wanted.push(digest_arg("output_files.digest", f.digest.as_ref())?);
    }
    for d in [&result.stdout_digest, &result.stderr_digest]
        .into_iter()
        .flatten()
    {
        wanted.push(digest_arg("stdout/stderr digest", Some(d))?);
    }
    for dir in &result.output_directories {
        if dir.tree_digest.is_some() {
            let td = digest_arg("output_directories.tree_digest", dir.tree_digest.as_ref())?;
            let Some(bytes) = store.read(&td)? else {
                missing.push(td);
                continue;
            };
            let tree = reapi::Tree::decode(bytes.as_slice()).map_err(|e| {
                ServiceError::InvalidArgument(format!("blob {td} is not a Tree: {e}"))
            })?;
            for d in tree.root.iter().chain(&tree.children) {
                for f in &d.files {
                    wanted.push(digest_arg("tree file digest", f.digest.as_ref())?);
                }
            }
        } else {
            let root = digest_arg(
                "output_directories.root_directory_digest",
                dir.root_directory_digest.as_ref(),
            )?;
            walk_directories(store, root, &mut wanted, &mut missing)?;
        }
    }
    missing.extend(store.find_missing(&wanted));
    Ok(missing)
}

/// Adds the file digests below the Directory `root` to `wanted`, and any
/// Directory blob that is gone to `missing`.
fn walk_directories(
    store: &dyn BlobStore,
    root: Digest,
    wanted: &mut Vec<Digest>,
    missing: &mut Vec<Digest>,
) -> Result<(), ServiceError> {
    let mut seen = HashSet::from([root]);
    let mut queue = VecDeque::from([root]);
    while let Some(d) = queue.pop_front() {
        let Some(bytes) = store.read(&d)? else {
            missing.push(d);
            continue;
        };
        let dir = reapi::Directory::decode(bytes.as_slice()).map_err(|e| {
            ServiceError::InvalidArgument(format!("blob {d} is not a Directory: {e}"))
        })?;
        for f in &dir.files {
            wanted.push(digest_arg("file digest", f.digest.as_ref())?);
        }
        for sub in &dir.directories {
            let sd = digest_arg("directory digest", sub.digest.as_ref())?;
            if seen.insert(sd) {
                queue.push_back(sd);
            }
        }
    }
    Ok(())
}

/// Copies small stdout, stderr and requested output files into the result,
/// within [`INLINE_LIMIT`] bytes in all. Best effort: what does not fit or
/// cannot be read stays a digest only.
pub fn inline(store: &dyn BlobStore, result: &mut reapi::ActionResult, want: &InlineRequest) {
    let mut budget = INLINE_LIMIT;
    let mut take = |d: Option<&reapi::Digest>| -> Option<Vec<u8>> {
        let d = Digest::from_proto_opt(d).ok()?;
        if d.size() > budget {
            return None;
        }
        let data = store.read(&d).ok()??;
        budget -= d.size();
        Some(data)
    };
    if want.stdout
        && let Some(data) = take(result.stdout_digest.as_ref())
    {
        result.stdout_raw = data;
    }
    if want.stderr
        && let Some(data) = take(result.stderr_digest.as_ref())
    {
        result.stderr_raw = data;
    }
    for f in &mut result.output_files {
        if want.files.contains(&f.path)
            && let Some(data) = take(f.digest.as_ref())
        {
            f.contents = data;
        }
    }
}

/// Checks the digests a client-supplied result refers to.
pub fn validate_result(result: &reapi::ActionResult) -> Result<(), ServiceError> {
    for f in &result.output_files {
        digest_arg(
            &format!("output_files[{:?}].digest", f.path),
            f.digest.as_ref(),
        )?;
    }
    for (field, d) in [
        ("stdout_digest", &result.stdout_digest),
        ("stderr_digest", &result.stderr_digest),
    ] {
        if d.is_some() {
            digest_arg(field, d.as_ref())?;
        }
    }
    for dir in &result.output_directories {
        let field = format!("output_directories[{:?}]", dir.path);
        match (&dir.tree_digest, &dir.root_directory_digest) {
            (None, None) => {
                return Err(ServiceError::InvalidArgument(format!(
                    "{field} has neither tree_digest nor root_directory_digest"
                )));
            }
            (t, r) => {
                for d in [t, r].into_iter().flatten() {
                    digest_arg(&field, Some(d))?;
                }
            }
        }
    }
    Ok(())
}

/// GetActionResult: the usable cached result, inlined as asked, or
/// NOT_FOUND.
pub fn get_action_result(
    store: &dyn BlobStore,
    ac: &DiskActionCache,
    req: &reapi::GetActionResultRequest,
) -> Result<reapi::ActionResult, ServiceError> {
    let (action, stored) = stored_result(ac, req)?;
    answer(store, &action, stored, req)
}

/// The action `req` names and the entry stored for it (one small file).
fn stored_result(
    ac: &DiskActionCache,
    req: &reapi::GetActionResultRequest,
) -> Result<(Digest, Option<reapi::ActionResult>), ServiceError> {
    check_digest_function(req.digest_function)?;
    let action = digest_arg("action_digest", req.action_digest.as_ref())?;
    let stored = ac.get(&action)?;
    Ok((action, stored))
}

/// GetActionResult's answer from `stored`, the entry for `action`.
fn answer(
    store: &dyn BlobStore,
    action: &Digest,
    stored: Option<reapi::ActionResult>,
    req: &reapi::GetActionResultRequest,
) -> Result<reapi::ActionResult, ServiceError> {
    let mut result = stored
        .and_then(|r| usable(store, action, r))
        .ok_or_else(|| ServiceError::NotFound(format!("no cached result for action {action}")))?;
    let want = InlineRequest {
        stdout: req.inline_stdout,
        stderr: req.inline_stderr,
        files: req.inline_output_files.clone(),
    };
    inline(store, &mut result, &want);
    Ok(result)
}

/// Results whose blobs add up to at most this many bytes, with no output
/// directory, are [`light`].
const LIGHT: i64 = 64 << 10;

/// Whether a stored result is small enough to answer from on an async
/// thread: a few page-cache reads of some KB each. Anything else is read
/// on a blocking thread.
fn light(r: &reapi::ActionResult) -> bool {
    let sizes = r
        .output_files
        .iter()
        .filter_map(|f| f.digest.as_ref())
        .chain(&r.stdout_digest)
        .chain(&r.stderr_digest)
        .map(|d| d.size_bytes.max(0));
    r.output_directories.is_empty() && sizes.sum::<i64>() <= LIGHT
}

/// UpdateActionResult: stores the result as given and returns it.
pub fn update_action_result(
    ac: &DiskActionCache,
    req: &reapi::UpdateActionResultRequest,
) -> Result<reapi::ActionResult, ServiceError> {
    check_digest_function(req.digest_function)?;
    let action = digest_arg("action_digest", req.action_digest.as_ref())?;
    let result = req
        .action_result
        .as_ref()
        .ok_or_else(|| ServiceError::InvalidArgument("action_result is missing".into()))?;
    validate_result(result)?;
    ac.put(&action, result)?;
    Ok(result.clone())
}

/// The ActionCache service.
#[derive(Clone)]
pub struct ActionCacheService {
    store: Arc<dyn BlobStore>,
    ac: Arc<DiskActionCache>,
}

impl ActionCacheService {
    pub fn new(store: Arc<dyn BlobStore>, ac: Arc<DiskActionCache>) -> ActionCacheService {
        ActionCacheService { store, ac }
    }
}

#[tonic::async_trait]
impl ActionCache for ActionCacheService {
    async fn get_action_result(
        &self,
        request: tonic::Request<reapi::GetActionResultRequest>,
    ) -> Result<tonic::Response<reapi::ActionResult>, tonic::Status> {
        super::auth::require(&request, super::auth::Scope::Read)?;
        let req = request.into_inner();
        // A compile's result is read here: handing it to a blocking thread
        // and back cost more than the reads (0.15 ms of a 2.5 ms hit).
        let result = match stored_result(&self.ac, &req) {
            Err(e) => Err(e),
            Ok((action, stored)) if stored.as_ref().is_some_and(light) => {
                answer(&*self.store, &action, stored, &req)
            }
            Ok((action, stored)) => {
                let store = self.store.clone();
                blocking(move || answer(&*store, &action, stored, &req)).await
            }
        };
        tracing::debug!(hit = result.is_ok(), "GetActionResult");
        Ok(tonic::Response::new(result?))
    }

    async fn update_action_result(
        &self,
        request: tonic::Request<reapi::UpdateActionResultRequest>,
    ) -> Result<tonic::Response<reapi::ActionResult>, tonic::Status> {
        super::auth::require(&request, super::auth::Scope::WriteAc)?;
        let req = request.into_inner();
        let ac = self.ac.clone();
        let result = blocking(move || update_action_result(&ac, &req)).await?;
        tracing::debug!("UpdateActionResult");
        Ok(tonic::Response::new(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::test_util::Fixture;

    fn result_with(f: &Fixture) -> (reapi::ActionResult, Digest, Digest) {
        let out = f.put(b"object code");
        let stdout = f.put(b"hello\n");
        let tree_file = f.put(b"inside a tree");
        let tree = reapi::Tree {
            root: Some(reapi::Directory {
                files: vec![reapi::FileNode {
                    name: "f".into(),
                    digest: Some(tree_file.to_proto()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            children: vec![],
        };
        let tree_digest = f.put_message(&tree);
        let r = reapi::ActionResult {
            output_files: vec![reapi::OutputFile {
                path: "a.o".into(),
                digest: Some(out.to_proto()),
                ..Default::default()
            }],
            output_directories: vec![reapi::OutputDirectory {
                path: "d".into(),
                tree_digest: Some(tree_digest.to_proto()),
                ..Default::default()
            }],
            stdout_digest: Some(stdout.to_proto()),
            ..Default::default()
        };
        (r, out, tree_file)
    }

    fn get(
        f: &Fixture,
        action: &Digest,
        inline_stdout: bool,
    ) -> Result<reapi::ActionResult, ServiceError> {
        get_action_result(
            &*f.store,
            &f.ac,
            &reapi::GetActionResultRequest {
                action_digest: Some(action.to_proto()),
                inline_stdout,
                inline_output_files: vec!["a.o".into()],
                ..Default::default()
            },
        )
    }

    #[test]
    fn small_results_without_directories_are_light() {
        let f = Fixture::new();
        let ask = |action: &Digest| reapi::GetActionResultRequest {
            action_digest: Some(action.to_proto()),
            ..Default::default()
        };
        let (with_dir, _, _) = result_with(&f);
        let small = reapi::ActionResult {
            output_directories: vec![],
            ..with_dir.clone()
        };
        let big_file = f.put(&vec![7; LIGHT as usize + 1]);
        let big = reapi::ActionResult {
            output_files: vec![reapi::OutputFile {
                path: "a.o".into(),
                digest: Some(big_file.to_proto()),
                ..Default::default()
            }],
            ..small.clone()
        };
        let light_stored = |action: &Digest| {
            let (_, stored) = stored_result(&f.ac, &ask(action)).unwrap();
            stored.as_ref().is_some_and(light)
        };
        let light_of = |r: &reapi::ActionResult, name: &[u8]| {
            let action = Digest::of_bytes(name);
            f.ac.put(&action, r).unwrap();
            light_stored(&action)
        };
        assert!(light_of(&small, b"small"));
        assert!(!light_of(&with_dir, b"with a directory"));
        assert!(!light_of(&big, b"big"));
        assert!(!light_stored(&Digest::of_bytes(b"never stored")));
    }

    #[test]
    fn update_then_get_with_inlining() {
        let f = Fixture::new();
        let (r, _, _) = result_with(&f);
        let action = Digest::of_bytes(b"action");
        assert_eq!(
            get(&f, &action, false).unwrap_err().code(),
            tonic::Code::NotFound
        );
        let stored = update_action_result(
            &f.ac,
            &reapi::UpdateActionResultRequest {
                action_digest: Some(action.to_proto()),
                action_result: Some(r.clone()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(stored, r);
        let got = get(&f, &action, false).unwrap();
        assert!(got.stdout_raw.is_empty());
        assert_eq!(got.output_files[0].contents, b"object code");
        let got = get(&f, &action, true).unwrap();
        assert_eq!(got.stdout_raw, b"hello\n");
    }

    #[test]
    fn results_with_evicted_blobs_are_not_found() {
        let f = Fixture::new();
        let (r, _, tree_file) = result_with(&f);
        let action = Digest::of_bytes(b"action");
        f.ac.put(&action, &r).unwrap();
        assert!(get(&f, &action, false).is_ok());

        // A file inside an output tree is gone from a fresh store.
        let g = Fixture::new();
        g.ac.put(&action, &r).unwrap();
        for d in [&r.output_files[0].digest, &r.stdout_digest] {
            let d = Digest::from_proto_opt(d.as_ref()).unwrap();
            g.store
                .write(&d, &f.store.read(&d).unwrap().unwrap())
                .unwrap();
        }
        let td = Digest::from_proto_opt(r.output_directories[0].tree_digest.as_ref()).unwrap();
        assert_eq!(missing_outputs(&*g.store, &r).unwrap(), vec![td]);
        g.store
            .write(&td, &f.store.read(&td).unwrap().unwrap())
            .unwrap();
        assert_eq!(missing_outputs(&*g.store, &r).unwrap(), vec![tree_file]);
        assert_eq!(
            get(&g, &action, false).unwrap_err().code(),
            tonic::Code::NotFound
        );
        g.put(b"inside a tree");
        assert!(get(&g, &action, false).is_ok());
    }

    #[test]
    fn bad_updates_are_invalid_arguments() {
        let f = Fixture::new();
        let action = Digest::of_bytes(b"action");
        let mut r = reapi::ActionResult::default();
        r.output_files.push(reapi::OutputFile {
            path: "x".into(),
            digest: Some(reapi::Digest {
                hash: "nothex".into(),
                size_bytes: 1,
            }),
            ..Default::default()
        });
        for req in [
            reapi::UpdateActionResultRequest {
                action_digest: Some(action.to_proto()),
                action_result: Some(r),
                ..Default::default()
            },
            reapi::UpdateActionResultRequest {
                action_digest: Some(action.to_proto()),
                ..Default::default()
            },
            reapi::UpdateActionResultRequest {
                action_result: Some(Default::default()),
                ..Default::default()
            },
        ] {
            let e = update_action_result(&f.ac, &req).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
        }
    }
}
