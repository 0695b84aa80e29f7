//! Caps on live event streams (SSE): each holds a connection and a task
//! for as long as the browser stays, so without caps one client could
//! open thousands and exhaust the node. A stream takes a slot for its
//! whole life: one of the node's, one of its client address's and one of
//! its payment's; the slot is given back when the stream ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Which cap refused a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamCap {
    /// The node's total.
    Node,
    /// The client address's.
    Client,
    /// The payment's.
    Payment,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    per_payment: HashMap<String, usize>,
}

/// The open streams of this node.
#[derive(Debug)]
pub struct StreamSlots {
    max_total: usize,
    max_per_ip: usize,
    max_per_payment: usize,
    open: Mutex<Open>,
}

/// A stream's slot; dropping it gives the slot back.
#[derive(Debug)]
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    ip: IpAddr,
    payment: String,
}

impl StreamSlots {
    /// Caps: in total, per client address, per payment.
    pub fn new(max_total: usize, max_per_ip: usize, max_per_payment: usize) -> Self {
        Self {
            max_total,
            max_per_ip,
            max_per_payment,
            open: Mutex::new(Open::default()),
        }
    }

    /// Takes a slot for a stream of `payment` from `ip`.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr, payment: &str) -> Result<StreamSlot, StreamCap> {
        // Poisoned: refuse rather than count wrongly for ever.
        let mut open = self.open.lock().map_err(|_| StreamCap::Node)?;
        if open.total >= self.max_total {
            return Err(StreamCap::Node);
        }
        if open.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip {
            return Err(StreamCap::Client);
        }
        if open.per_payment.get(payment).copied().unwrap_or(0) >= self.max_per_payment {
            return Err(StreamCap::Payment);
        }
        open.total += 1;
        *open.per_ip.entry(ip).or_default() += 1;
        *open.per_payment.entry(payment.to_owned()).or_default() += 1;
        Ok(StreamSlot {
            slots: self.clone(),
            ip,
            payment: payment.to_owned(),
        })
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.open.lock().map_or(0, |o| o.total)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let Ok(mut open) = self.slots.open.lock() else {
            return;
        };
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
        if let Some(n) = open.per_payment.get_mut(&self.payment) {
            *n -= 1;
            if *n == 0 {
                open.per_payment.remove(&self.payment);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cap_holds_and_slots_come_back() {
        let slots = Arc::new(StreamSlots::new(3, 2, 2));
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        let b: IpAddr = "198.51.100.2".parse().unwrap();
        let s1 = slots.acquire(a, "pay_1").unwrap();
        let s2 = slots.acquire(a, "pay_2").unwrap();
        assert_eq!(slots.acquire(a, "pay_3").unwrap_err(), StreamCap::Client);
        let s3 = slots.acquire(b, "pay_1").unwrap();
        assert_eq!(slots.acquire(b, "pay_4").unwrap_err(), StreamCap::Node);
        drop(s2);
        assert_eq!(slots.acquire(b, "pay_1").unwrap_err(), StreamCap::Payment);
        let s4 = slots.acquire(b, "pay_4").unwrap();
        drop((s1, s3, s4));
        assert_eq!(slots.open(), 0);
    }
}
