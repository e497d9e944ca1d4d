//! A tiny authoritative DNS responder on loopback UDP: answers A queries from a table the
//! test controls, with a 1 s TTL, so re-resolution can be observed.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;

pub struct Dns {
    pub addr: SocketAddr,
    pub records: Arc<Mutex<HashMap<String, Vec<Ipv4Addr>>>>,
    pub queries: Arc<Mutex<usize>>,
}

impl Dns {
    pub async fn start() -> Dns {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let records: Arc<Mutex<HashMap<String, Vec<Ipv4Addr>>>> = Default::default();
        let queries = Arc::new(Mutex::new(0));
        let (table, count) = (records.clone(), queries.clone());
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                *count.lock().unwrap() += 1;
                let reply = answer(&buf[..n], &table.lock().unwrap());
                if let Some(reply) = reply {
                    let _ = sock.send_to(&reply, from).await;
                }
            }
        });
        Dns {
            addr,
            records,
            queries,
        }
    }

    pub fn set(&self, name: &str, ips: &[Ipv4Addr]) {
        self.records
            .lock()
            .unwrap()
            .insert(name.to_string(), ips.to_vec());
    }
}

/// Build a response to one query: A records from `table`, NXDOMAIN otherwise.
fn answer(q: &[u8], table: &HashMap<String, Vec<Ipv4Addr>>) -> Option<Vec<u8>> {
    if q.len() < 12 {
        return None;
    }
    // Question name.
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let question_end = i + 4;
    let name = labels.join(".");
    let ips = if qtype == 1 {
        table.get(&name).cloned()
    } else {
        Some(vec![])
    };
    let mut r = Vec::with_capacity(512);
    r.extend_from_slice(&q[0..2]); // id
    let rcode = if ips.is_none() && !table.contains_key(&name) {
        3
    } else {
        0
    };
    r.extend_from_slice(&[0x84 | (q[2] & 0x01), 0x80 | rcode]); // QR, AA, RD echoed; RA
    r.extend_from_slice(&[0, 1]); // qdcount
    let ips = ips.unwrap_or_default();
    r.extend_from_slice(&(ips.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(q.get(12..question_end)?);
    for ip in ips {
        r.extend_from_slice(&[0xc0, 12]); // pointer to the question name
        r.extend_from_slice(&[0, 1, 0, 1]); // A, IN
        r.extend_from_slice(&1u32.to_be_bytes()); // TTL 1 s
        r.extend_from_slice(&[0, 4]);
        r.extend_from_slice(&ip.octets());
    }
    Some(r)
}
