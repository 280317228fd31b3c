//! Caps per client address: a count per address, taken by a slot and given back when the slot
//! is dropped (open connections per peer; uploads in progress per client).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
};

/// A count per client address with a cap (connections per peer, uploads per client).
pub(crate) struct PerClient {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One unit counted against its client address until dropped.
pub(crate) struct ClientSlot(Option<(Arc<PerClient>, IpAddr)>);

impl PerClient {
    /// At most `limit` at once per address; 0: no cap.
    pub(crate) fn new(limit: usize) -> Arc<PerClient> {
        Arc::new(PerClient {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for one more from `ip`, or `None` at the cap.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        if self.limit == 0 {
            return Some(ClientSlot(None));
        }
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(ClientSlot(Some((self.clone(), ip))))
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let Some((clients, ip)) = self.0.take() else { return };
        let mut open = clients.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_each_address_and_gives_back_on_drop() {
        let clients = PerClient::new(2);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let first = clients.admit(a).unwrap();
        let _second = clients.admit(a).unwrap();
        assert!(clients.admit(a).is_none(), "at the cap");
        assert!(clients.admit(b).is_some(), "another address has its own count");
        drop(first);
        assert!(clients.admit(a).is_some(), "a dropped slot is given back");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let _third = clients.admit(a).unwrap();
        assert!(
            clients.admit(mapped).is_none(),
            "an IPv4-mapped address is the same client"
        );
        let unlimited = PerClient::new(0);
        let held: Vec<_> = (0..100).filter_map(|_| unlimited.admit(a)).collect();
        assert_eq!(held.len(), 100, "0 means no cap");
    }
}
