//! The queue and the local workers, and which worker may take which action.
//!
//! Each worker has platform properties: by default the host's `OSFamily`
//! and `ISA` in the REAPI lexicon (remote-apis `platform.md`), plus the
//! `--platform KEY=VALUE` extras. An action may run on a worker that has
//! every property the action asks for, with the same value; a worker key
//! with several values matches any of them. An action no worker can ever
//! take is refused at once rather than queued forever.
//!
//! Matching is pure; [`Scheduler`] is generic over the job, so it knows
//! nothing of REAPI execution (that is `execution`'s business).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// A worker's properties: each key with the values it offers.
pub type Properties = BTreeMap<String, BTreeSet<String>>;

/// This machine's `OSFamily` and ISA, from the one lexicon in
/// [`crate::platform`]. A host the lexicon cannot name offers no standard
/// properties (only the `--platform` extras), with a warning.
pub fn host_properties() -> Vec<(String, String)> {
    match crate::platform::host() {
        Ok(p) => p.into_pairs(),
        Err(e) => {
            tracing::warn!("workers offer no OSFamily/ISA: {e}");
            Vec::new()
        }
    }
}

/// Collects `(key, value)` pairs into worker properties.
pub fn properties<'a>(pairs: impl IntoIterator<Item = &'a (String, String)>) -> Properties {
    let mut p = Properties::new();
    for (k, v) in pairs {
        p.entry(k.clone()).or_default().insert(v.clone());
    }
    p
}

/// Whether a worker with `worker` properties may run an action asking for
/// `wanted`.
pub fn matches(worker: &Properties, wanted: &[(String, String)]) -> bool {
    wanted
        .iter()
        .all(|(k, v)| worker.get(k).is_some_and(|vs| vs.contains(v)))
}

/// `None` when some worker matches; else why none does, naming what the
/// closest worker lacks and what it offers for those keys, e.g.
/// `no worker matches platform property ISA=arm-a64 (workers offer ISA=x86-64)`.
pub fn explain_no_match(workers: &[Properties], wanted: &[(String, String)]) -> Option<String> {
    let unmatched = |w: &Properties| -> Vec<&(String, String)> {
        wanted
            .iter()
            .filter(|(k, v)| !w.get(k).is_some_and(|vs| vs.contains(v)))
            .collect()
    };
    let closest = workers.iter().min_by_key(|w| unmatched(w).len());
    let Some(closest) = closest else {
        return Some("this server has no workers".into());
    };
    let missing = unmatched(closest);
    if missing.is_empty() {
        return None;
    }
    let asked: Vec<String> = missing.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut keys: Vec<&String> = Vec::new();
    for (k, _) in &missing {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let offered: Vec<String> = keys
        .iter()
        .map(|k| {
            let mut values = BTreeSet::new();
            for w in workers {
                values.extend(w.get(*k).into_iter().flatten());
            }
            if values.is_empty() {
                format!("no {k}")
            } else {
                values
                    .iter()
                    .map(|v| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        })
        .collect();
    let noun = if asked.len() == 1 {
        "property"
    } else {
        "properties"
    };
    Some(format!(
        "no worker matches platform {noun} {} (workers offer {})",
        asked.join(", "),
        offered.join("; ")
    ))
}

struct Queued<J> {
    platform: Vec<(String, String)>,
    job: J,
}

struct Shared<J> {
    queue: Mutex<VecDeque<Queued<J>>>,
    notify: Notify,
    workers: Vec<Properties>,
}

/// A FIFO queue served by one task per worker. A worker takes the oldest
/// job it matches, so a job only some workers can run does not hold up
/// the others.
pub struct Scheduler<J> {
    shared: Arc<Shared<J>>,
}

impl<J: Send + 'static> Scheduler<J> {
    /// Starts one task per worker on the current runtime; each runs
    /// `handler(worker_index, job)` for the jobs it takes, one at a time.
    pub fn start<F, Fut>(workers: Vec<Properties>, handler: F) -> Scheduler<J>
    where
        F: Fn(usize, J) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            workers,
        });
        let handler = Arc::new(handler);
        for index in 0..shared.workers.len() {
            let shared = shared.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                loop {
                    let job = take(&shared, index).await;
                    // Its own task, so a panicking job costs that job, not
                    // the worker.
                    if let Err(e) = tokio::spawn(handler(index, job)).await {
                        tracing::error!(worker = index, error = %e, "job failed");
                    }
                }
            });
        }
        Scheduler { shared }
    }

    /// Queues a job, or hands it back with the reason no worker could
    /// ever take it.
    pub fn submit(&self, platform: Vec<(String, String)>, job: J) -> Result<(), (String, J)> {
        if let Some(why) = explain_no_match(&self.shared.workers, &platform) {
            return Err((why, job));
        }
        lock(&self.shared.queue).push_back(Queued { platform, job });
        // Every idle worker looks; those that do not match go back to sleep.
        self.shared.notify.notify_waiters();
        Ok(())
    }

    /// Jobs waiting for a worker.
    pub fn queued(&self) -> usize {
        lock(&self.shared.queue).len()
    }

    pub fn workers(&self) -> &[Properties] {
        &self.shared.workers
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits for the oldest job worker `index` can run.
async fn take<J>(shared: &Shared<J>, index: usize) -> J {
    let mine = &shared.workers[index];
    loop {
        // Registered before looking, so a job queued in between still
        // wakes this worker.
        let notified = shared.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut queue = lock(&shared.queue);
            if let Some(at) = queue.iter().position(|q| matches(mine, &q.platform)) {
                return queue.remove(at).expect("position is in range").job;
            }
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::*;

    fn pairs(ps: &[(&str, &str)]) -> Vec<(String, String)> {
        ps.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn host_properties_use_the_lexicon() {
        let host = host_properties();
        assert_eq!(host, crate::platform::host().unwrap().into_pairs());
        if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            assert_eq!(host, pairs(&[("ISA", "x86-64"), ("OSFamily", "linux")]));
        }
    }

    #[test]
    fn matching_needs_every_property_with_a_value_offered() {
        let w = properties(&pairs(&[
            ("OSFamily", "linux"),
            ("ISA", "x86-64"),
            ("ISA", "x86-avx2"),
            ("Pool", "default"),
        ]));
        assert!(matches(&w, &[]));
        assert!(matches(&w, &pairs(&[("OSFamily", "linux")])));
        assert!(matches(
            &w,
            &pairs(&[("ISA", "x86-64"), ("ISA", "x86-avx2")])
        ));
        assert!(!matches(
            &w,
            &pairs(&[("ISA", "x86-64"), ("ISA", "arm-sve")])
        ));
        assert!(!matches(&w, &pairs(&[("OSFamily", "macos")])));
        assert!(!matches(&w, &pairs(&[("container-image", "x")])));
    }

    #[test]
    fn no_match_messages_name_what_is_missing() {
        let ws = vec![properties(&pairs(&[
            ("OSFamily", "linux"),
            ("ISA", "x86-64"),
        ]))];
        assert_eq!(explain_no_match(&ws, &pairs(&[("ISA", "x86-64")])), None);
        assert_eq!(
            explain_no_match(&ws, &pairs(&[("ISA", "arm-a64")])).unwrap(),
            "no worker matches platform property ISA=arm-a64 (workers offer ISA=x86-64)"
        );
        assert_eq!(
            explain_no_match(
                &ws,
                &pairs(&[("OSFamily", "linux"), ("Pool", "gpu"), ("ISA", "rv64g")])
            )
            .unwrap(),
            "no worker matches platform properties Pool=gpu, ISA=rv64g (workers offer no Pool; ISA=x86-64)"
        );
        assert!(explain_no_match(&[], &[]).is_some());
    }

    #[tokio::test]
    async fn workers_take_only_jobs_they_match() {
        let ws = vec![
            properties(&pairs(&[("Pool", "a")])),
            properties(&pairs(&[("Pool", "b")])),
        ];
        let (tx, mut rx) = mpsc::unbounded_channel();
        let s = Scheduler::start(ws, move |worker, job: u32| {
            let tx = tx.clone();
            async move {
                tx.send((worker, job)).unwrap();
            }
        });
        s.submit(pairs(&[("Pool", "b")]), 1).unwrap();
        s.submit(pairs(&[("Pool", "a")]), 2).unwrap();
        s.submit(vec![], 3).unwrap();
        assert!(s.submit(pairs(&[("Pool", "c")]), 4).is_err());
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(
                tokio::time::timeout(Duration::from_secs(5), rx.recv())
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        got.sort_by_key(|(_, j)| *j);
        assert_eq!(got[0], (1, 1));
        assert_eq!(got[1], (0, 2));
        assert_eq!(got[2].1, 3);
        assert_eq!(s.queued(), 0);
    }

    #[tokio::test]
    async fn one_worker_runs_jobs_one_at_a_time() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let s = Scheduler::start(vec![Properties::new()], move |_, job: u32| {
            let tx = tx.clone();
            async move {
                tx.send(("start", job)).unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                tx.send(("end", job)).unwrap();
            }
        });
        for j in 0..3 {
            s.submit(vec![], j).unwrap();
        }
        let mut events = Vec::new();
        for _ in 0..6 {
            events.push(rx.recv().await.unwrap());
        }
        let expected: Vec<(&str, u32)> = (0..3).flat_map(|j| [("start", j), ("end", j)]).collect();
        assert_eq!(events, expected);
    }
}
