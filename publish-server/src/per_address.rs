//! Fairness between clients: at most `SSE_MAX_STREAMS_PER_ADDRESS` open event streams per client
//! address on this instance, so one address cannot take all of `SSE_MAX_CONNECTIONS`.
//!
//! One map of counters shared by the server, holding only the addresses that have a stream open;
//! each stream holds an [`AddressSlot`] (an `Arc` and the address) in its `ClientGuard`, which gives
//! the slot back when the stream ends, however it ends. The lock is held for one map operation.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
};

/// Open streams per client address.
pub struct StreamsPerAddress {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl StreamsPerAddress {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            open: Mutex::default(),
        })
    }

    /// A slot for one more stream of `addr`, or `None` when it has `max` open already.
    pub fn admit(self: &Arc<Self>, addr: IpAddr) -> Option<AddressSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(addr).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            streams: self.clone(),
            addr,
        })
    }

    /// Addresses with a stream open (for tests and metrics).
    pub fn addresses(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// One open stream of an address; dropping it frees the place.
pub struct AddressSlot {
    streams: Arc<StreamsPerAddress>,
    addr: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.streams.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.addr) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_at_most_max_streams_and_its_places_come_back() {
        let streams = StreamsPerAddress::new(2);
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let first = streams.admit(a).unwrap();
        let _second = streams.admit(a).unwrap();
        assert!(streams.admit(a).is_none(), "a third stream of one address");
        let _other = streams.admit(b).expect("another address is not affected");
        drop(first);
        let _again = streams
            .admit(a)
            .expect("a place freed by a stream that ended");
        assert_eq!(streams.addresses(), 2);
        drop((_second, _again, _other));
        assert_eq!(
            streams.addresses(),
            0,
            "no entry is kept for an address without streams"
        );
    }
}
