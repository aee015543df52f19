//! The set of live handles, so a pointer is checked before it is ever dereferenced: a NULL, a
//! handle of another kind, a freed handle (double free, use after free) or any other pointer is
//! refused with `PMA_INVALID_HANDLE` instead of being read. (A freed address that the allocator
//! has since reused for a new handle of the same kind cannot be told apart.)

use std::collections::BTreeMap;
use std::sync::Mutex;

/// What a handle points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Agent,
    Batch,
    Report,
}

static LIVE: Mutex<BTreeMap<usize, Kind>> = Mutex::new(BTreeMap::new());

fn live() -> std::sync::MutexGuard<'static, BTreeMap<usize, Kind>> {
    // The map is never left half-updated (single insert/remove), so a poisoned lock is usable.
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hands a boxed value to C as a registered handle.
pub(crate) fn into_handle<T>(value: Box<T>, kind: Kind) -> *mut T {
    let p = Box::into_raw(value);
    live().insert(p as usize, kind);
    p
}

/// Whether `p` is a live handle of `kind`.
pub(crate) fn is_live<T>(p: *const T, kind: Kind) -> bool {
    live().get(&(p as usize)) == Some(&kind)
}

/// Unregisters `p` if it is a live handle of `kind`; true when the caller now owns it and must
/// free it.
pub(crate) fn take<T>(p: *mut T, kind: Kind) -> bool {
    let mut map = live();
    if map.get(&(p as usize)) == Some(&kind) {
        map.remove(&(p as usize));
        if map.is_empty() {
            // An emptied BTreeMap keeps its root node: release it, so a host that freed every
            // handle holds no memory of ours (leak checkers see nothing).
            *map = BTreeMap::new();
        }
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_lifetimes_are_checked() {
        let p = into_handle(Box::new(5u64), Kind::Batch);
        assert!(is_live(p, Kind::Batch));
        assert!(!is_live(p, Kind::Agent));
        assert!(!take(p, Kind::Report));
        assert!(take(p, Kind::Batch));
        assert!(!is_live(p, Kind::Batch));
        assert!(!take(p, Kind::Batch), "a second free is refused");
        // SAFETY: taken above, so owned here.
        drop(unsafe { Box::from_raw(p) });
    }
}
