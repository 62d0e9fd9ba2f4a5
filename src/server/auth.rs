//! Who may call the server, and what each caller may do.
//!
//! Every call passes the [`Gate`] (a tonic interceptor) before any service
//! sees it. The gate decides the caller's [`Scopes`] and puts them in the
//! request's extensions; each handler then asks [`require`] for the scope
//! its method needs. A request that did not pass the gate carries no
//! scopes and is refused: a service wired without the gate fails closed.
//!
//! How a caller is known, by listener:
//! - a Unix socket: the peer's uid (`SO_PEERCRED`, through tonic's
//!   `UdsConnectInfo`) must be the server's own; anyone else gets
//!   PERMISSION_DENIED naming whose server this is. This is how the
//!   embedded per-user server answers its owner only.
//! - tokens (`--auth-tokens FILE`, or the one all-scopes token of
//!   `--auth-token-file`): `authorization: Bearer TOKEN`, hashed with
//!   SHA-256 and compared in constant time with every entry's hash; the
//!   entry's scopes apply. The file is re-read when it changes.
//! - neither (TCP with `--allow-unauthenticated`, or mutual TLS, which
//!   tonic checks before the call): every scope.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

/// One thing a caller may be allowed to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Capabilities, FindMissingBlobs, BatchReadBlobs, GetTree, ByteStream
    /// Read and QueryWriteStatus, GetActionResult.
    Read,
    /// BatchUpdateBlobs, ByteStream Write.
    WriteCas,
    /// UpdateActionResult: what a later caller will trust as the result of
    /// an action nobody here ran.
    WriteAc,
    /// Execute, WaitExecution and the Operations service. Results of
    /// executions are written to the action cache by the server itself.
    Execute,
}

impl Scope {
    const ALL: [Scope; 4] = [Scope::Read, Scope::WriteCas, Scope::WriteAc, Scope::Execute];

    fn bit(self) -> u8 {
        1 << self as u8
    }

    /// The spelling in the token file.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::WriteCas => "write-cas",
            Scope::WriteAc => "write-ac",
            Scope::Execute => "execute",
        }
    }

    fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.name() == s)
    }
}

/// What one caller may do; put in each request's extensions by the gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    pub const ALL: Scopes = Scopes(0b1111);
    pub const NONE: Scopes = Scopes(0);

    pub fn of(list: &[Scope]) -> Scopes {
        Scopes(list.iter().fold(0, |acc, s| acc | s.bit()))
    }

    pub fn allows(self, s: Scope) -> bool {
        self.0 & s.bit() != 0
    }
}

/// The caller's scopes as the gate decided them (none if it did not run).
pub fn scopes_of<T>(req: &tonic::Request<T>) -> Scopes {
    req.extensions()
        .get::<Scopes>()
        .copied()
        .unwrap_or(Scopes::NONE)
}

/// PERMISSION_DENIED unless the caller holds `scope`.
#[allow(clippy::result_large_err)]
pub fn require<T>(req: &tonic::Request<T>, scope: Scope) -> Result<(), tonic::Status> {
    if scopes_of(req).allows(scope) {
        Ok(())
    } else {
        Err(tonic::Status::permission_denied(format!(
            "this token lacks the `{}` scope this call needs; ask the server's \
             operator for a token with it (recast serve --auth-tokens)",
            scope.name()
        )))
    }
}

/// One entry of the token file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    /// Shown in the server's log.
    name: String,
    /// The token itself...
    token: Option<String>,
    /// ...or its SHA-256 in hex, so the file need not hold the secret.
    sha256: Option<String>,
    scopes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFileText {
    #[serde(default)]
    token: Vec<EntryFile>,
}

/// A token the server accepts.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    hash: [u8; 32],
    pub scopes: Scopes,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Parses a token file (TOML: `[[token]]` tables with `name`, `token` or
/// `sha256`, and `scopes`). Pure; the error says which entry is wrong.
pub fn parse_tokens(text: &str) -> Result<Vec<Entry>, String> {
    let file: TokenFileText = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(file.token.len());
    for (i, e) in file.token.into_iter().enumerate() {
        let what = format!("token {} ({:?})", i + 1, e.name);
        let hash = match (e.token, e.sha256) {
            (Some(t), None) => {
                let t = t.trim();
                if t.is_empty() {
                    return Err(format!("{what}: the token is empty"));
                }
                sha256(t.as_bytes())
            }
            (None, Some(h)) => hex::decode(h.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| format!("{what}: sha256 must be 64 hex digits"))?,
            _ => return Err(format!("{what}: give exactly one of `token` and `sha256`")),
        };
        let mut scopes = Vec::new();
        for s in &e.scopes {
            let scope = Scope::parse(s).ok_or_else(|| {
                format!(
                    "{what}: unknown scope {s:?} (the scopes: {})",
                    Scope::ALL.map(Scope::name).join(", ")
                )
            })?;
            scopes.push(scope);
        }
        out.push(Entry {
            name: e.name,
            hash,
            scopes: Scopes::of(&scopes),
        });
    }
    Ok(out)
}

/// The entry whose token is `given`. Every entry is compared, each in
/// constant time, so the time taken says nothing about the token.
pub fn find<'a>(entries: &'a [Entry], given: &[u8]) -> Option<&'a Entry> {
    let h = sha256(given);
    let mut found = None;
    for e in entries {
        let diff = e.hash.iter().zip(&h).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff == 0 && found.is_none() {
            found = Some(e);
        }
    }
    found
}

/// The file's identity: a change of any part means it was rewritten.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path)?;
    Ok(Stamp {
        ino: m.ino(),
        size: m.size(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
    })
}

/// Where the accepted tokens come from.
pub enum Tokens {
    /// `--auth-token-file`: one token, every scope.
    Single(Vec<Entry>),
    /// `--auth-tokens`: a file of tokens and scopes, re-read when it changes.
    File(TokenFile),
}

/// A token file and what was last read from it. A file that no longer
/// parses keeps the last good set (and says so in the log once per
/// change), so a half-saved edit does not lock everyone out.
pub struct TokenFile {
    path: PathBuf,
    state: Mutex<(Option<Stamp>, Arc<Vec<Entry>>)>,
}

impl TokenFile {
    /// Reads `path` now; an unreadable or invalid file is an error here.
    pub fn open(path: &Path) -> Result<TokenFile, String> {
        let st = stamp(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let entries = parse_tokens(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if entries.is_empty() {
            return Err(format!(
                "{}: no [[token]] entries; every call would be refused",
                path.display()
            ));
        }
        Ok(TokenFile {
            path: path.to_path_buf(),
            state: Mutex::new((Some(st), Arc::new(entries))),
        })
    }

    /// The current entries, re-read first if the file changed.
    fn entries(&self) -> Arc<Vec<Entry>> {
        let now = stamp(&self.path).ok();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if now.is_some() && now != state.0 {
            state.0 = now;
            let parsed = std::fs::read_to_string(&self.path)
                .map_err(|e| e.to_string())
                .and_then(|t| parse_tokens(&t));
            match parsed {
                Ok(entries) => {
                    tracing::info!(file = %self.path.display(), tokens = entries.len(), "token file reloaded");
                    state.1 = Arc::new(entries);
                }
                Err(e) => tracing::error!(
                    "{}: {e}; keeping the {} tokens read before",
                    self.path.display(),
                    state.1.len()
                ),
            }
        }
        state.1.clone()
    }
}

impl Tokens {
    /// The one token of `--auth-token-file`, with every scope.
    pub fn single(token: &str) -> Tokens {
        Tokens::Single(vec![Entry {
            name: "auth-token-file".into(),
            hash: sha256(token.as_bytes()),
            scopes: Scopes::ALL,
        }])
    }

    fn check(&self, given: &[u8]) -> Option<(String, Scopes)> {
        match self {
            Tokens::Single(e) => find(e, given).map(|e| (e.name.clone(), e.scopes)),
            Tokens::File(f) => find(&f.entries(), given).map(|e| (e.name.clone(), e.scopes)),
        }
    }
}

/// How callers are told apart; see the module doc.
pub struct Policy {
    /// Unix-socket callers must have this uid.
    pub owner: u32,
    pub tokens: Option<Tokens>,
}

/// The interceptor in front of every service: decides the caller's scopes
/// and marks the server as in use (the idle timeout).
#[derive(Clone)]
pub struct Gate {
    pub policy: Arc<Policy>,
    pub activity: Arc<super::Activity>,
}

impl tonic::service::Interceptor for Gate {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        self.activity.touch();
        let uds = req
            .extensions()
            .get::<tonic::transport::server::UdsConnectInfo>();
        if let Some(info) = uds {
            let uid = info.peer_cred.map(|c| c.uid());
            if uid != Some(self.policy.owner) {
                tracing::warn!(peer_uid = ?uid, "refused a call from another user");
                return Err(tonic::Status::permission_denied(format!(
                    "this recast server belongs to uid {} and runs commands for its owner only \
                     (you are uid {}); start your own: unset RECAST_REMOTE and let recast start \
                     your embedded server, or run `recast serve`",
                    self.policy.owner,
                    uid.map_or_else(|| "unknown".to_string(), |u| u.to_string()),
                )));
            }
        }
        let scopes = match &self.policy.tokens {
            None => Scopes::ALL,
            Some(tokens) => {
                let given = req
                    .metadata()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or("")
                    .trim()
                    .as_bytes();
                match tokens.check(given) {
                    Some((name, scopes)) => {
                        tracing::trace!(token = %name, "call");
                        scopes
                    }
                    None => {
                        return Err(tonic::Status::unauthenticated(
                            "missing or wrong bearer token: send `authorization: Bearer TOKEN` \
                             (recast: --remote-header or RECAST_REMOTE_HEADERS)",
                        ));
                    }
                }
            }
        };
        req.extensions_mut().insert(scopes);
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_parse_with_scopes_and_hashes() {
        let hash = hex::encode(sha256(b"hashed"));
        let text = format!(
            r#"
[[token]]
name = "ci"
token = "ci-secret"
scopes = ["read", "write-cas", "write-ac", "execute"]

[[token]]
name = "dev"
sha256 = "{hash}"
scopes = ["read", "write-cas", "execute"]
"#
        );
        let entries = parse_tokens(&text).unwrap();
        let ci = find(&entries, b"ci-secret").unwrap();
        assert_eq!(ci.name, "ci");
        assert_eq!(ci.scopes, Scopes::ALL);
        let dev = find(&entries, b"hashed").unwrap();
        assert_eq!(dev.name, "dev");
        assert!(dev.scopes.allows(Scope::Execute) && dev.scopes.allows(Scope::WriteCas));
        assert!(!dev.scopes.allows(Scope::WriteAc));
        assert!(find(&entries, b"ci-secre").is_none());
        assert!(find(&entries, b"").is_none());
    }

    #[test]
    fn bad_token_files_say_which_entry() {
        for (text, want) in [
            (
                "[[token]]\nname='a'\ntoken='x'\nscopes=['admin']",
                "unknown scope \"admin\"",
            ),
            (
                "[[token]]\nname='a'\nscopes=['read']",
                "exactly one of `token` and `sha256`",
            ),
            (
                "[[token]]\nname='a'\nsha256='abc'\nscopes=['read']",
                "64 hex digits",
            ),
            ("[[token]]\nname='a'\ntoken=' '\nscopes=[]", "empty"),
            ("[[token]]\nname='a'\ntoken='x'\nscope=[]", "unknown field"),
        ] {
            let e = parse_tokens(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn the_token_file_is_reread_when_it_changes_and_kept_when_broken() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens.toml");
        let write = |text: &str| {
            // Rename over it, as editors do: a new inode even within one tick.
            let tmp = dir.path().join("t.tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, &p).unwrap();
        };
        write("[[token]]\nname='a'\ntoken='one'\nscopes=['read']\n");
        let f = TokenFile::open(&p).unwrap();
        let t = Tokens::File(f);
        assert!(t.check(b"one").is_some());
        write("[[token]]\nname='b'\ntoken='two'\nscopes=['read','write-ac']\n");
        assert!(t.check(b"one").is_none());
        assert!(t.check(b"two").unwrap().1.allows(Scope::WriteAc));
        write("not toml [");
        assert!(
            t.check(b"two").is_some(),
            "a broken file keeps the last set"
        );
    }

    #[test]
    fn requests_that_did_not_pass_the_gate_are_refused() {
        let req = tonic::Request::new(());
        let e = require(&req, Scope::Read).unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        let mut req = tonic::Request::new(());
        req.extensions_mut().insert(Scopes::of(&[Scope::Read]));
        assert!(require(&req, Scope::Read).is_ok());
        let e = require(&req, Scope::WriteAc).unwrap_err();
        assert!(e.message().contains("write-ac"), "{}", e.message());
    }
}
