//! The binary's allocator: the first allocations of a process come from
//! a fixed arena and are never given back; the rest from the C library.
//!
//! A wrapped compile is a process that lives a millisecond or two and
//! allocates well under a megabyte. musl's allocator (the static release
//! build's) maps a fresh group of pages for nearly every size class it
//! meets and unmaps it as soon as the group empties: a cache hit made
//! about fifty `mmap`/`munmap` calls, a tenth of its time. Taking those
//! first allocations from one static arena by bumping an offset costs no
//! call at all. A long-lived process (`recast serve`, a front) uses the
//! arena up early, keeps it, and goes on with the C library's allocator.
//!
//! The arena lives in `.bss` and is smaller than a huge page, so the
//! kernel maps it a page at a time, on first touch, never a 2 MiB page to
//! zero (which is what made mimalloc slower here than either C library).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The arena's size: what a cache hit needs, with room, and below a
/// huge page.
pub const SIZE: usize = 1536 << 10;

#[repr(C, align(4096))]
struct Space(UnsafeCell<[u8; SIZE]>);

// SAFETY: the bytes are handed out in disjoint ranges (see `Arena::alloc`);
// the arena itself never reads or writes them.
unsafe impl Sync for Space {}

/// The allocator: `#[global_allocator] static A: Arena = Arena::new();`.
pub struct Arena {
    space: Space,
    /// Offset of the first free byte.
    next: AtomicUsize,
}

impl Arena {
    pub const fn new() -> Arena {
        Arena {
            space: Space(UnsafeCell::new([0; SIZE])),
            next: AtomicUsize::new(0),
        }
    }

    fn base(&self) -> usize {
        self.space.0.get() as usize
    }

    /// The offset of `ptr` in the arena, if it is the arena's.
    fn offset(&self, ptr: *mut u8) -> Option<usize> {
        let off = (ptr as usize).wrapping_sub(self.base());
        (off < SIZE).then_some(off)
    }

    /// How many bytes have been handed out.
    #[cfg(test)]
    fn used(&self) -> usize {
        self.next.load(Ordering::Relaxed)
    }
}

impl Default for Arena {
    fn default() -> Arena {
        Arena::new()
    }
}

// SAFETY: every range handed out is reserved by one compare-and-swap on
// `next`, so no two live allocations overlap; a range is taken back only
// by the same swap in reverse, when it is the last one handed out.
// Anything that does not fit goes to, and comes back from, `System`.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = self.base();
        let mut cur = self.next.load(Ordering::Relaxed);
        loop {
            // Aligned in the address space, not just the offset.
            let start = (base + cur).next_multiple_of(layout.align()) - base;
            let Some(end) = start.checked_add(layout.size()).filter(|&e| e <= SIZE) else {
                // SAFETY: the caller's layout, passed on.
                return unsafe { System.alloc(layout) };
            };
            match self
                .next
                .compare_exchange_weak(cur, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return (base + start) as *mut u8,
                Err(now) => cur = now,
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match self.offset(ptr) {
            // The last range handed out is taken back; any other stays.
            Some(off) => {
                let _ = self.next.compare_exchange(
                    off + layout.size(),
                    off,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            // SAFETY: `ptr` came from `System` with this layout.
            None => unsafe { System.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(off) = self.offset(ptr) else {
            // SAFETY: `ptr` came from `System` with this layout.
            return unsafe { System.realloc(ptr, layout, new_size) };
        };
        // The last range grows or shrinks where it is.
        if off.checked_add(new_size).is_some_and(|end| end <= SIZE)
            && self
                .next
                .compare_exchange(
                    off + layout.size(),
                    off + new_size,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return ptr;
        }
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: the caller guarantees `new_size` is valid for the
        // alignment; the old range holds `layout.size()` initialised bytes
        // and does not overlap the new one.
        unsafe {
            let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size());
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn ranges_are_aligned_disjoint_and_the_last_is_taken_back() {
        static A: Arena = Arena::new();
        let a = &A;
        unsafe {
            let p = a.alloc(layout(3, 1));
            let q = a.alloc(layout(8, 64));
            assert_eq!(q as usize % 64, 0);
            assert!(q as usize >= p as usize + 3);
            p.write_bytes(0xaa, 3);
            q.write_bytes(0xbb, 8);
            assert_eq!(*p.add(2), 0xaa);
            let used = a.used();
            // Not the last: stays.
            a.dealloc(p, layout(3, 1));
            assert_eq!(a.used(), used);
            // The last: taken back, and handed out again.
            a.dealloc(q, layout(8, 64));
            assert!(a.used() < used);
            assert_eq!(a.alloc(layout(8, 64)), q);
        }
    }

    #[test]
    fn realloc_grows_the_last_in_place_and_moves_the_others_with_their_bytes() {
        static A: Arena = Arena::new();
        let a = &A;
        unsafe {
            let p = a.alloc(layout(4, 4));
            p.copy_from_nonoverlapping([1u8, 2, 3, 4].as_ptr(), 4);
            let grown = a.realloc(p, layout(4, 4), 100);
            assert_eq!(grown, p, "the last range grows where it is");
            let q = a.alloc(layout(16, 8));
            let moved = a.realloc(p, layout(100, 4), 200);
            assert_ne!(moved, p);
            assert!(moved as usize >= q as usize + 16, "past q, not over it");
            assert_eq!(std::slice::from_raw_parts(moved, 4), &[1, 2, 3, 4]);
            assert_eq!(a.realloc(moved, layout(200, 4), 10), moved, "shrinks");
        }
    }

    #[test]
    fn what_does_not_fit_comes_from_the_system_and_goes_back_there() {
        static A: Arena = Arena::new();
        let a = &A;
        unsafe {
            let big = a.alloc(layout(SIZE + 1, 8));
            assert!(a.offset(big).is_none());
            big.write_bytes(7, SIZE + 1);
            // Fill the arena, then one more byte: from the system.
            let all = a.alloc(layout(SIZE - a.used(), 1));
            assert!(a.offset(all).is_some());
            let one = a.alloc(layout(1, 1));
            assert!(a.offset(one).is_none());
            // A range moved out of a full arena keeps its bytes.
            let r = a.realloc(all, layout(SIZE, 1), SIZE + 10);
            assert!(a.offset(r).is_none());
            a.dealloc(one, layout(1, 1));
            a.dealloc(r, layout(SIZE + 10, 1));
            a.dealloc(big, layout(SIZE + 1, 8));
        }
    }

    #[test]
    fn threads_get_disjoint_ranges() {
        static A: Arena = Arena::new();
        let a = &A;
        let ranges: Vec<Vec<(usize, usize)>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(move || {
                        (0..500)
                            .map(|i| {
                                let size = 8 + i % 40;
                                let p = unsafe { a.alloc(layout(size, 8)) };
                                (p as usize, size)
                            })
                            .collect()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut all: Vec<(usize, usize)> = ranges.into_iter().flatten().collect();
        all.sort();
        for w in all.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0, "overlap: {w:?}");
        }
    }
}
