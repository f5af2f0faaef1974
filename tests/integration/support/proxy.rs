//! CONNECT proxies on 127.0.0.1 for tests: one that records each `CONNECT` head and refuses
//! or opens the tunnel (to a loopback target only), and one that drips its answer. Every
//! wait is bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A CONNECT proxy on 127.0.0.1: records each CONNECT head, then either answers `refuse` or
/// opens the tunnel to the (loopback) target and relays bytes both ways.
pub struct Proxy {
    pub addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    pub fn start(refuse: Option<&'static str>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let h = heads.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let h = h.clone();
                thread::spawn(move || tunnel(stream, refuse, &h));
            }
        });
        Proxy { addr, heads }
    }

    /// Every CONNECT head read so far, in order.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

fn tunnel(mut client: TcpStream, refuse: Option<&str>, heads: &Mutex<Vec<String>>) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    heads.lock().unwrap().push(head.clone());
    if let Some(answer) = refuse {
        let _ = client.write_all(answer.as_bytes());
        return;
    }
    let target = head.split_whitespace().nth(1).unwrap_or("").to_owned();
    assert!(target.starts_with("127.0.0.1:"), "tunnel to {target}");
    let Ok(upstream) = TcpStream::connect(&target) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
        return;
    };
    let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
    let mut up_read = upstream.try_clone().unwrap();
    let mut down_write = client.try_clone().unwrap();
    let relay = thread::spawn(move || {
        let _ = std::io::copy(&mut up_read, &mut down_write);
        let _ = down_write.shutdown(std::net::Shutdown::Both);
    });
    let mut up_write = upstream;
    // Whatever the reader buffered past the head belongs to the tunnel.
    let buffered = reader.buffer().to_vec();
    let _ = up_write.write_all(&buffered);
    let mut rest = reader.into_inner();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match rest.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if up_write.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = up_write.shutdown(std::net::Shutdown::Both);
    let _ = relay.join();
}

/// A proxy that answers CONNECT one byte every 300 ms, forever.
pub fn dripping_proxy() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            thread::spawn(move || {
                let mut head = [0u8; 512];
                let _ = stream.read(&mut head);
                for b in b"HTTP/1.1 200 OK\r\nX-A: "
                    .iter()
                    .chain(std::iter::repeat(&b'b'))
                {
                    thread::sleep(Duration::from_millis(300));
                    if stream.write_all(&[*b]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}
