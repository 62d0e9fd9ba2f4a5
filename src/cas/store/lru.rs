//! In-memory bookkeeping for a size-bounded store: which blobs exist, how
//! many bytes they take, and in which order they were last used.
//!
//! Pure data structure, no I/O: the disk store decides what a "use" is and
//! deletes the files this index tells it to evict. Every operation is
//! O(log n): a map from digest to entry plus an ordered map from a use
//! counter back to the digest.

use std::collections::{BTreeMap, HashMap};

use crate::cas::Digest;

/// One stored blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Content size in bytes.
    pub size: u64,
    /// Whether an executable copy is kept next to the plain one.
    pub exec_variant: bool,
    /// Seconds since the epoch at which the file's atime was last set, so the
    /// disk store refreshes it at most once a minute per blob.
    pub stamped: u64,
    tick: u64,
}

impl Slot {
    /// Bytes on disk: the blob, plus its executable copy if there is one.
    pub fn footprint(&self) -> u64 {
        if self.exec_variant {
            self.size * 2
        } else {
            self.size
        }
    }
}

#[derive(Debug, Default)]
pub struct LruIndex {
    slots: HashMap<Digest, Slot>,
    order: BTreeMap<u64, Digest>,
    next_tick: u64,
    total: u64,
}

impl LruIndex {
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Every stored digest, in no particular order.
    pub fn digests(&self) -> Vec<Digest> {
        self.slots.keys().copied().collect()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn get(&self, d: &Digest) -> Option<&Slot> {
        self.slots.get(d)
    }

    /// Marks a blob as just used; returns its slot if present.
    pub fn touch(&mut self, d: &Digest) -> Option<&mut Slot> {
        let tick = self.next_tick;
        let slot = self.slots.get_mut(d)?;
        self.order.remove(&slot.tick);
        slot.tick = tick;
        self.order.insert(tick, *d);
        self.next_tick += 1;
        Some(slot)
    }

    /// Adds a blob as the most recently used one. Adding a present blob only
    /// touches it. Returns false when it was already there.
    pub fn insert(&mut self, d: Digest, size: u64, exec_variant: bool, stamped: u64) -> bool {
        if self.touch(&d).is_some() {
            return false;
        }
        let slot = Slot {
            size,
            exec_variant,
            stamped,
            tick: self.next_tick,
        };
        self.order.insert(slot.tick, d);
        self.next_tick += 1;
        self.total += slot.footprint();
        self.slots.insert(d, slot);
        true
    }

    /// Records that the executable copy of a present blob now exists.
    pub fn add_exec_variant(&mut self, d: &Digest) -> bool {
        match self.slots.get_mut(d) {
            Some(slot) if !slot.exec_variant => {
                slot.exec_variant = true;
                self.total += slot.size;
                true
            }
            _ => false,
        }
    }

    pub fn remove(&mut self, d: &Digest) -> Option<Slot> {
        let slot = self.slots.remove(d)?;
        self.order.remove(&slot.tick);
        self.total -= slot.footprint();
        Some(slot)
    }

    /// Removes and returns the least recently used blob other than `keep`.
    pub fn pop_oldest_except(&mut self, keep: Option<&Digest>) -> Option<(Digest, Slot)> {
        let victim = self.order.values().find(|d| Some(*d) != keep).copied()?;
        let slot = self.remove(&victim)?;
        Some((victim, slot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Digest {
        Digest::of_bytes(s.as_bytes())
    }

    #[test]
    fn evicts_least_recently_used_first() {
        let mut lru = LruIndex::default();
        lru.insert(d("a"), 1, false, 0);
        lru.insert(d("b"), 2, false, 0);
        lru.insert(d("c"), 3, false, 0);
        assert_eq!(lru.total(), 6);
        lru.touch(&d("a"));
        assert_eq!(lru.pop_oldest_except(None).unwrap().0, d("b"));
        assert_eq!(lru.pop_oldest_except(Some(&d("c"))).unwrap().0, d("a"));
        assert_eq!(lru.pop_oldest_except(Some(&d("c"))), None);
        assert_eq!(lru.total(), 3);
        assert_eq!(lru.len(), 1);
    }

    #[test]
    fn reinsert_touches_and_exec_variant_counts_twice() {
        let mut lru = LruIndex::default();
        assert!(lru.insert(d("a"), 10, false, 0));
        assert!(lru.insert(d("b"), 10, false, 0));
        assert!(!lru.insert(d("a"), 10, false, 0));
        assert_eq!(lru.total(), 20);
        assert!(lru.add_exec_variant(&d("a")));
        assert!(!lru.add_exec_variant(&d("a")));
        assert_eq!(lru.total(), 30);
        assert_eq!(lru.pop_oldest_except(None).unwrap().0, d("b"));
        assert_eq!(lru.remove(&d("a")).unwrap().footprint(), 20);
        assert_eq!(lru.total(), 0);
        assert!(lru.touch(&d("a")).is_none());
    }
}
